package dev.sluice.bench;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Comparator;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Stream;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.ExecutionOptions;
import org.apache.flink.configuration.JobManagerOptions;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.configuration.RestOptions;
import org.apache.flink.configuration.SecurityOptions;
import org.apache.flink.configuration.TaskManagerOptions;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.core.execution.CheckpointingMode;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.windowing.ProcessWindowFunction;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;
import sun.misc.Signal;

/**
 * Sluice's page-views job (examples/page-views.ts) and the benchmark's stateless job
 * (bench/jobs/stateless.ts) with Flink's DataStream API, as a benchmark peer: a local mini-cluster in
 * this JVM, parallelism 2, a KafkaSource from the earliest offsets and a KafkaSink.
 *
 * <p><b>page-views</b> (the default, {@code --job page-views}): the source's deserializer reads the
 * value as strict JSON (Jackson with FAIL_ON_TRAILING_TOKENS, as JSON.parse) and skips it unless it
 * is an object with a string {@code page} and a numeric {@code ts}; event time is {@code
 * floor(ts)}; keyed by page, counted in tumbling 10 s event-time windows with allowed lateness 0, and
 * written keyed by page as {@code {"key":page,"windowStart":ms,"windowEnd":ms,"value":count}}.
 *
 * <p>Why this is Sluice's {@code lateness: '5s', emit: 'final'}: Sluice's stream time is the
 * smallest, over the upstream partitions, of the largest event time each has seen; a window [s, s +
 * 10 s) closes when stream time ≥ s + 15 s, emits its one result then, and a record for a closed
 * window is late (dropped). Here the watermark strategy is {@code forBoundedOutOfOrderness(5 s)} set
 * on the source, so each Kafka partition (split) has its own watermark, max ts − 5 000 − 1, the
 * source subtask forwards the smallest over its splits and the window operator takes the smallest over
 * its inputs: the watermark is Sluice's stream time − 5 001. An event-time window fires when the
 * watermark reaches its last millisecond, s + 9 999, that is when stream time ≥ s + 15 000; with
 * allowed lateness 0 it is purged at that moment (one result per window, on close), and a record for
 * it is dropped as late from then on (cleanup time s + 9 999 ≤ watermark): the same close and the
 * same lateness rule. Per-split watermarks make a backlog exact: a partition read ahead of the
 * others cannot close windows the others still fill. The watermark moves every auto-watermark
 * interval and travels with the data, so (like Sluice's stream time, which moves once per batch) it
 * can lag the exact minimum but never lead it; on an input where no record is more than 5 s behind
 * its partition's largest event time (the benchmark's), every record is counted. No idleness is
 * configured: every partition of the benchmark's input carries data and a far-future flush record
 * (and live traffic, in latency mode), and an idle partition excluded from the minimum would let the
 * others close its windows early. (Sluice's idle timeout advances an idle partition by wall-clock
 * time; Flink has no such rule, and the benchmark's inputs do not need one.)
 *
 * <p><b>stateless</b> ({@code --job stateless}): keeps the values that parse (strictly) as an object
 * whose {@code page} is a string and whose {@code user} is a string not starting with {@code bot-},
 * adds {@code "path": page.toLowerCase()}, keeps every other field, and writes the result keyed by
 * the input key. Source, filter-map and sink are chained: no shuffle, no state.
 *
 * <p>Delivery: at-least-once, the counterpart of Sluice's at-least-once mode. The KafkaSink's
 * AT_LEAST_ONCE flushes its producer before each checkpoint completes, and the source's offsets and
 * the window state are in that checkpoint: without checkpointing Flink has nothing to recover from,
 * so checkpointing is on, every {@code --checkpoint-ms} (1 000 by default, like the other peers'
 * commit interval; mode AT_LEAST_ONCE: no barrier alignment; state on the heap, checkpoints in the
 * JobManager's memory). Output does not wait for checkpoints (no transactions), so the interval does
 * not bear on latency. Offsets are also committed to the consumer group on each checkpoint.
 *
 * <p>Latency setting ({@code --setting-ms N}): Flink moves data on without a record forcing it at
 * two intervals, which are what a Flink user turns for latency: {@code pipeline.auto-watermark-interval}
 * (how often the sources emit watermarks, which close windows; default 200 ms) and {@code
 * execution.buffer-timeout.interval} (how long a network buffer may wait to fill before it is sent
 * downstream; default 100 ms). N sets both; without it both keep Flink's defaults. Object reuse is on
 * (no copy between chained operators; the functions here keep no reference to their input).
 *
 * <p>Output records carry no event-time timestamp (the producer stamps its wall-clock time), so
 * retention by time never removes what was just written.
 *
 * <p>Prints {@code FIRST_RECORD <epoch ms>} on stdout when the first input record is deserialized;
 * runs until SIGTERM/SIGINT, then stops the job with a savepoint into a temporary directory (Flink's
 * graceful stop: the sink flushes, offsets are committed), cancels it if that fails, and exits 0.
 *
 * <p>Arguments: {@code --bootstrap --input --output [--job page-views|stateless] [--setting-ms N]
 * [--checkpoint-ms 1000]} (0: no checkpointing) {@code [--group-id <consumer group>]}.
 */
public final class PageViewsFlink {
  private static final long WINDOW_MS = 10_000;
  private static final long LATENESS_MS = 5_000;
  private static final int PARALLELISM = 2;
  private static final String LOOPBACK = "127.0.0.1";

  /** Rejects trailing content ({@code {...}}}), as JSON.parse does; Jackson accepts it by default. */
  static final ObjectMapper JSON = new ObjectMapper().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

  private static final AtomicBoolean FIRST = new AtomicBoolean(true);

  private PageViewsFlink() {}

  public static void main(String[] argv) throws Exception {
    Map<String, String> args = parseArgs(argv);
    String bootstrap = required(args, "bootstrap");
    String input = required(args, "input");
    String output = required(args, "output");
    String job = args.getOrDefault("job", "page-views");
    if (!job.equals("page-views") && !job.equals("stateless")) {
      throw new IllegalArgumentException("--job is page-views or stateless, got " + job);
    }
    long checkpointMs = Long.parseLong(args.getOrDefault("checkpoint-ms", "1000"));
    String groupId = args.getOrDefault("group-id", "flink-" + job + "-" + System.currentTimeMillis());

    Configuration conf = new Configuration();
    // Everything stays on the loopback interface (the blob server binds to jobmanager.bind-host);
    // the REST endpoint takes a free port.
    conf.set(JobManagerOptions.BIND_HOST, LOOPBACK);
    conf.set(JobManagerOptions.ADDRESS, LOOPBACK);
    conf.set(TaskManagerOptions.BIND_HOST, LOOPBACK);
    conf.set(TaskManagerOptions.HOST, LOOPBACK);
    conf.set(RestOptions.BIND_ADDRESS, LOOPBACK);
    conf.set(RestOptions.ADDRESS, LOOPBACK);
    conf.set(RestOptions.BIND_PORT, "0");
    conf.set(PipelineOptions.OBJECT_REUSE, true);
    // No Kerberos or other tokens to obtain (otherwise a warning at every start).
    conf.set(SecurityOptions.DELEGATION_TOKENS_ENABLED, false);
    if (args.containsKey("setting-ms")) {
      Duration setting = Duration.ofMillis(Long.parseLong(args.get("setting-ms")));
      conf.set(PipelineOptions.AUTO_WATERMARK_INTERVAL, setting);
      conf.set(ExecutionOptions.BUFFER_TIMEOUT, setting);
    }
    Path savepoints = Files.createTempDirectory("flink-page-views-savepoints-");
    conf.set(CheckpointingOptions.SAVEPOINT_DIRECTORY, savepoints.toUri().toString());
    StreamExecutionEnvironment env = StreamExecutionEnvironment.createLocalEnvironment(PARALLELISM, conf);
    if (checkpointMs > 0) env.enableCheckpointing(checkpointMs, CheckpointingMode.AT_LEAST_ONCE);

    if (job.equals("page-views")) pageViews(env, bootstrap, input, output, groupId);
    else stateless(env, bootstrap, input, output, groupId);

    // SIGTERM/SIGINT: main stops the job and exits 0 (a JVM ended by the default handler exits 143).
    CountDownLatch signalled = new CountDownLatch(1);
    for (String signal : new String[] {"TERM", "INT"}) {
      Signal.handle(new Signal(signal), s -> signalled.countDown());
    }
    JobClient client = env.executeAsync("page-views-flink-" + job);
    int exitCode = 0;
    while (!signalled.await(100, TimeUnit.MILLISECONDS)) {
      if (client.getJobExecutionResult().isDone()) {
        String how = client.getJobExecutionResult().handle((r, e) -> e == null ? "finished" : e.toString()).get();
        System.err.println("flink: the job ended on its own: " + how);
        exitCode = 1;
        break;
      }
    }
    if (exitCode == 0) {
      try {
        client.stopWithSavepoint(false, savepoints.toUri().toString(), SavepointFormatType.CANONICAL)
            .get(30, TimeUnit.SECONDS);
      } catch (Exception e) {
        System.err.println("flink: stop with savepoint failed, cancelling: " + e);
        try {
          client.cancel().get(20, TimeUnit.SECONDS);
        } catch (Exception cancel) {
          System.err.println("flink: cancel failed: " + cancel);
          exitCode = 1;
        }
      }
      try {
        client.getJobExecutionResult().get(5, TimeUnit.SECONDS);
      } catch (Exception ended) {
        // A cancelled job's result is an exception; it has ended either way.
      }
    }
    deleteRecursively(savepoints);
    System.exit(exitCode);
  }

  /** The page-views pipeline; see the class comment. */
  static void pageViews(
      StreamExecutionEnvironment env, String bootstrap, String input, String output, String groupId) {
    KafkaSource<Tuple2<String, Long>> source = source(bootstrap, input, groupId, new PageViewDeserializer());
    WatermarkStrategy<Tuple2<String, Long>> watermarks =
        WatermarkStrategy.<Tuple2<String, Long>>forBoundedOutOfOrderness(Duration.ofMillis(LATENESS_MS))
            .withTimestampAssigner((event, kafkaTimestamp) -> event.f1);
    env.fromSource(source, watermarks, "input")
        .keyBy(event -> event.f0, Types.STRING)
        .window(TumblingEventTimeWindows.of(Duration.ofMillis(WINDOW_MS)))
        .allowedLateness(Duration.ZERO)
        .aggregate(new Count(), new WindowResult(), Types.LONG, Types.LONG, TypeInformation.of(Raw.class))
        .name("count")
        .sinkTo(sink(bootstrap, output, new RawSerializer(output)))
        .name("output");
  }

  /** The stateless pipeline; see the class comment. */
  static void stateless(
      StreamExecutionEnvironment env, String bootstrap, String input, String output, String groupId) {
    KafkaSource<Raw> source = source(bootstrap, input, groupId, new RawDeserializer());
    env.fromSource(source, WatermarkStrategy.noWatermarks(), "input")
        .flatMap(PageViewsFlink::dropBotsAddPath, TypeInformation.of(Raw.class))
        .name("stateless")
        .sinkTo(sink(bootstrap, output, new RawSerializer(output)))
        .name("output");
  }

  static <T> KafkaSource<T> source(
      String bootstrap, String input, String groupId, KafkaRecordDeserializationSchema<T> deserializer) {
    return KafkaSource.<T>builder()
        .setBootstrapServers(bootstrap)
        .setTopics(input)
        .setGroupId(groupId)
        .setStartingOffsets(OffsetsInitializer.earliest())
        .setDeserializer(deserializer)
        .build();
  }

  static <T> KafkaSink<T> sink(
      String bootstrap, String output, KafkaRecordSerializationSchema<T> serializer) {
    return KafkaSink.<T>builder()
        .setBootstrapServers(bootstrap)
        .setRecordSerializer(serializer)
        .setDeliveryGuarantee(DeliveryGuarantee.AT_LEAST_ONCE)
        .build();
  }

  /** Prints {@code FIRST_RECORD <epoch ms>} once per JVM, for the first record deserialized. */
  static void reportFirstRecord() {
    if (FIRST.get() && FIRST.compareAndSet(true, false)) {
      System.out.println("FIRST_RECORD " + System.currentTimeMillis());
      System.out.flush();
    }
  }

  /** The value as a JSON object, or null when it is not one (or not JSON). */
  static ObjectNode parseObject(byte[] value) {
    if (value == null) return null;
    try {
      JsonNode node = JSON.readTree(value);
      return node != null && node.isObject() ? (ObjectNode) node : null;
    } catch (IOException malformed) {
      return null;
    }
  }

  /** Page views as (page, floor(ts)); skips values not an object with a string page and a numeric ts. */
  static final class PageViewDeserializer implements KafkaRecordDeserializationSchema<Tuple2<String, Long>> {
    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<Tuple2<String, Long>> out) {
      reportFirstRecord();
      ObjectNode event = parseObject(record.value());
      if (event != null && event.path("page").isTextual() && event.path("ts").isNumber()) {
        out.collect(Tuple2.of(event.get("page").asText(), (long) Math.floor(event.get("ts").asDouble())));
      }
    }

    @Override
    public TypeInformation<Tuple2<String, Long>> getProducedType() {
      return Types.TUPLE(Types.STRING, Types.LONG);
    }
  }

  /** Counts the records of a (page, window). */
  static final class Count implements AggregateFunction<Tuple2<String, Long>, Long, Long> {
    @Override
    public Long createAccumulator() {
      return 0L;
    }

    @Override
    public Long add(Tuple2<String, Long> event, Long count) {
      return count + 1;
    }

    @Override
    public Long getResult(Long count) {
      return count;
    }

    @Override
    public Long merge(Long a, Long b) {
      return a + b;
    }
  }

  /** The output record of a closed window: keyed by page, the JSON of the class comment. */
  static final class WindowResult extends ProcessWindowFunction<Long, Raw, String, TimeWindow> {
    @Override
    public void process(String page, Context context, Iterable<Long> counts, Collector<Raw> out)
        throws IOException {
      ObjectNode result = JSON.createObjectNode();
      result.put("key", page);
      result.put("windowStart", context.window().getStart());
      result.put("windowEnd", context.window().getEnd());
      result.put("value", counts.iterator().next());
      out.collect(new Raw(page.getBytes(StandardCharsets.UTF_8), JSON.writeValueAsBytes(result)));
    }
  }

  /** A Kafka record's key and value (a POJO: either may be null). */
  public static final class Raw {
    public byte[] key;
    public byte[] value;

    public Raw() {}

    Raw(byte[] key, byte[] value) {
      this.key = key;
      this.value = value;
    }
  }

  static final class RawDeserializer implements KafkaRecordDeserializationSchema<Raw> {
    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<Raw> out) {
      reportFirstRecord();
      out.collect(new Raw(record.key(), record.value()));
    }

    @Override
    public TypeInformation<Raw> getProducedType() {
      return TypeInformation.of(Raw.class);
    }
  }

  /** Writes the record as is (no timestamp), partitioned by Kafka's default partitioner on the key. */
  static final class RawSerializer implements KafkaRecordSerializationSchema<Raw> {
    private final String topic;

    RawSerializer(String topic) {
      this.topic = topic;
    }

    @Override
    public ProducerRecord<byte[], byte[]> serialize(Raw raw, KafkaSinkContext context, Long timestamp) {
      return new ProducerRecord<>(topic, raw.key, raw.value);
    }
  }

  /** bench/jobs/stateless.ts: drop non-page-views and bots, add the lower-cased path. */
  static void dropBotsAddPath(Raw raw, Collector<Raw> out) throws IOException {
    ObjectNode event = parseObject(raw.value);
    if (event == null || !event.path("page").isTextual() || !event.path("user").isTextual()) return;
    if (event.get("user").asText().startsWith("bot-")) return;
    event.put("path", event.get("page").asText().toLowerCase(Locale.ROOT));
    raw.value = JSON.writeValueAsBytes(event);
    out.collect(raw);
  }

  /** {@code --name value} or {@code --name=value}. */
  static Map<String, String> parseArgs(String[] argv) {
    Map<String, String> out = new HashMap<>();
    for (int i = 0; i < argv.length; i++) {
      String arg = argv[i];
      if (!arg.startsWith("--")) throw new IllegalArgumentException("unexpected argument " + arg);
      int eq = arg.indexOf('=');
      if (eq > 0) {
        out.put(arg.substring(2, eq), arg.substring(eq + 1));
      } else if (i + 1 < argv.length) {
        out.put(arg.substring(2), argv[++i]);
      } else {
        throw new IllegalArgumentException("missing value for " + arg);
      }
    }
    return out;
  }

  static String required(Map<String, String> args, String name) {
    String value = args.get(name);
    if (value == null || value.isEmpty()) throw new IllegalArgumentException("--" + name + " is required");
    return value;
  }

  static void deleteRecursively(Path dir) {
    try (Stream<Path> paths = Files.walk(dir)) {
      paths.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    } catch (IOException ignored) {
      // best effort: a temporary directory
    }
  }
}
