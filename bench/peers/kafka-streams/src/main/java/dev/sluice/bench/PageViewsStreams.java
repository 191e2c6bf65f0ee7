package dev.sluice.bench;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.Suppressed.BufferConfig;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.processor.TimestampExtractor;
import org.apache.kafka.streams.state.WindowStore;
import sun.misc.Signal;

/**
 * Sluice's page-views job (examples/page-views.ts) with the Kafka Streams DSL, as a benchmark peer.
 *
 * <p>Input: JSON {@code {page, user, ts}} keyed by user. Values that are not JSON (or not an object
 * with a string {@code page} and a numeric {@code ts}) are skipped. Records are re-keyed by page
 * (a repartition topic, as in Sluice), counted in tumbling 10 s event-time windows with 5 s grace, and
 * one final count per (page, window) is written when the window closes, as
 * {@code {"key":page,"windowStart":ms,"windowEnd":ms,"value":count}} keyed by page.
 *
 * <p>Final emission uses {@code suppress(untilWindowCloses)}, not {@code
 * emitStrategy(onWindowClose())}: the latter checks for closed windows at most once per wall-clock
 * second and only when a record arrives, so the windows closed by the very last record of a stream
 * (the benchmark's flush records) may never be emitted. Suppress emits as soon as stream time passes
 * window end + grace.
 *
 * <p>Delivery: {@code processing.guarantee=at_least_once} (the Kafka Streams default), the
 * counterpart of Sluice's at-least-once mode.
 *
 * <p>Prints {@code FIRST_RECORD <epoch ms>} on stdout when the first input record is processed; runs
 * until SIGTERM/SIGINT, then prints {@code DROPPED_RECORDS <n>} (records dropped as too late, from
 * the task metrics), closes cleanly (commits), removes its local state directory and exits 0.
 *
 * <p>{@code --grace-ms N} (default 5 000, the job's lateness) sets the windows' grace, and the
 * store's retention to window size + grace. A grace covering the event-time spread between upstream
 * tasks is what makes this job exact on a backlog: each aggregation task's stream time is the largest
 * event time it has seen from any upstream task, and those run at different event times while they
 * catch up (see docs/benchmarks.md).
 *
 * <p>{@code --job stateless} runs the benchmark's stateless job instead (bench/jobs/stateless.ts):
 * keep the objects whose {@code page} is a string and whose {@code user} is a string not starting
 * with {@code bot-}, add {@code "path": page.toLowerCase()}, keep every other field, write them
 * keyed by the input key. No repartition, no state.
 *
 * <p>Arguments: {@code --bootstrap --input --output --application-id [--commit-interval-ms 1000]
 * [--threads 2] [--grace-ms 5000] [--job page-views|stateless] [--state-dir <dir>] [--config
 * key=value ...]}: the state directory defaults to a fresh temporary directory; {@code --config} sets
 * any other Streams/client property.
 */
public final class PageViewsStreams {
  private static final long WINDOW_MS = 10_000;
  private static final long GRACE_MS = 5_000;

  /** Rejects trailing content ({@code {...}}}), as JSON.parse does; Jackson accepts it by default. */
  private static final ObjectMapper JSON =
      new ObjectMapper().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

  private PageViewsStreams() {}

  public static void main(String[] argv) throws Exception {
    Map<String, String> args = parseArgs(argv);
    String bootstrap = required(args, "bootstrap");
    String input = required(args, "input");
    String output = required(args, "output");
    String applicationId = required(args, "application-id");
    long commitIntervalMs = Long.parseLong(args.getOrDefault("commit-interval-ms", "1000"));
    int threads = Integer.parseInt(args.getOrDefault("threads", "2"));
    long graceMs = Long.parseLong(args.getOrDefault("grace-ms", String.valueOf(GRACE_MS)));
    String job = args.getOrDefault("job", "page-views");
    boolean ownStateDir = !args.containsKey("state-dir");
    Path stateDir =
        ownStateDir
            ? Files.createTempDirectory("kstreams-page-views-")
            : Path.of(args.get("state-dir"));

    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, applicationId);
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, threads);
    props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, commitIntervalMs);
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
    props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
    props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
    // --config key=value (repeatable): any other Streams, consumer or producer property.
    for (String entry : extraConfig(argv)) {
      int eq = entry.indexOf('=');
      if (eq <= 0) throw new IllegalArgumentException("--config wants key=value, got " + entry);
      props.put(entry.substring(0, eq), entry.substring(eq + 1));
    }

    Topology topology =
        switch (job) {
          case "page-views" -> buildTopology(input, output, graceMs);
          case "stateless" -> buildStatelessTopology(input, output);
          default -> throw new IllegalArgumentException("--job is page-views or stateless, got " + job);
        };
    KafkaStreams streams = new KafkaStreams(topology, props);

    // Exit code for main: 0 after SIGTERM/SIGINT, 1 when Kafka Streams died on its own.
    AtomicInteger exitCode = new AtomicInteger(0);
    CountDownLatch finished = new CountDownLatch(1);
    streams.setUncaughtExceptionHandler(
        e -> {
          System.err.println("kafka-streams: uncaught exception: " + e);
          return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
    streams.setStateListener(
        (now, before) -> {
          System.err.println("kafka-streams: state " + before + " -> " + now);
          if (now == KafkaStreams.State.ERROR) {
            exitCode.set(1);
            finished.countDown();
          }
        });

    AtomicBoolean closed = new AtomicBoolean(false);
    Runnable close =
        () -> {
          if (!closed.compareAndSet(false, true)) return;
          System.out.println("DROPPED_RECORDS " + droppedRecords(streams));
          System.out.flush();
          streams.close(Duration.ofSeconds(60));
          if (ownStateDir) deleteRecursively(stateDir);
        };
    // SIGTERM/SIGINT: main closes Kafka Streams and exits 0 (a JVM ended by the default handler
    // exits 143). The shutdown hook covers any other way out.
    for (String signal : new String[] {"TERM", "INT"}) {
      Signal.handle(new Signal(signal), s -> finished.countDown());
    }
    Runtime.getRuntime().addShutdownHook(new Thread(close, "page-views-shutdown"));

    streams.start();
    finished.await();
    close.run();
    System.exit(exitCode.get());
  }

  /** The page-views topology; see the class comment. */
  static Topology buildTopology(String input, String output, long graceMs) {
    Serde<JsonNode> json = jsonSerde();
    StreamsBuilder builder = new StreamsBuilder();
    builder.stream(input, Consumed.with(Serdes.String(), json).withTimestampExtractor(new TsExtractor()))
        .peek(firstRecordReporter())
        .filter((user, event) -> isPageView(event))
        .selectKey((user, event) -> event.get("page").asText())
        // Re-keyed by page: Kafka Streams writes <application-id>-by-page-repartition (murmur2 on the
        // page, as the benchmark's flush records assume) and aggregates from there.
        .groupByKey(Grouped.with("by-page", Serdes.String(), json))
        .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMillis(WINDOW_MS), Duration.ofMillis(graceMs)))
        .count(
            Materialized.<String, Long, WindowStore<Bytes, byte[]>>as("page-counts")
                .withKeySerde(Serdes.String())
                .withValueSerde(Serdes.Long())
                .withRetention(Duration.ofMillis(WINDOW_MS + graceMs)))
        .suppress(Suppressed.untilWindowCloses(BufferConfig.unbounded()).withName("final-counts"))
        .toStream()
        .map(
            (window, count) -> {
              ObjectNode out = JSON.createObjectNode();
              out.put("key", window.key());
              out.put("windowStart", window.window().start());
              out.put("windowEnd", window.window().end());
              out.put("value", count);
              return KeyValue.pair(window.key(), out.toString());
            })
        .to(output, Produced.with(Serdes.String(), Serdes.String()));
    return builder.build();
  }

  /** The stateless topology (bench/jobs/stateless.ts); see the class comment. */
  static Topology buildStatelessTopology(String input, String output) {
    Serde<JsonNode> json = jsonSerde();
    StreamsBuilder builder = new StreamsBuilder();
    builder.stream(input, Consumed.with(Serdes.String(), json))
        .peek(firstRecordReporter())
        .filter(
            (user, event) ->
                event != null
                    && event.path("page").isTextual()
                    && event.path("user").isTextual()
                    && !event.get("user").asText().startsWith("bot-"))
        .mapValues(
            event -> {
              ObjectNode out = ((ObjectNode) event).deepCopy();
              out.put("path", event.get("page").asText().toLowerCase(java.util.Locale.ROOT));
              return out.toString();
            })
        .to(output, Produced.with(Serdes.String(), Serdes.String()));
    return builder.build();
  }

  /** Prints {@code FIRST_RECORD <epoch ms>} once, for the first record that reaches it. */
  static org.apache.kafka.streams.kstream.ForeachAction<String, JsonNode> firstRecordReporter() {
    AtomicBoolean first = new AtomicBoolean(true);
    return (key, value) -> {
      if (first.get() && first.compareAndSet(true, false)) {
        System.out.println("FIRST_RECORD " + System.currentTimeMillis());
        System.out.flush();
      }
    };
  }

  /**
   * Records dropped so far by all tasks of this instance: records for expired windows (later than
   * the grace period) and records the topology could not process. Task metrics vanish on close.
   */
  static long droppedRecords(KafkaStreams streams) {
    double total = 0;
    for (Map.Entry<MetricName, ? extends Metric> e : streams.metrics().entrySet()) {
      if (e.getKey().name().equals("dropped-records-total")
          && e.getKey().group().equals("stream-task-metrics")
          && e.getValue().metricValue() instanceof Number n) {
        total += n.doubleValue();
      }
    }
    return (long) total;
  }

  /** What the Sluice job's filter and event-time function accept: a string page and a numeric ts. */
  static boolean isPageView(JsonNode event) {
    return event != null && event.path("page").isTextual() && event.path("ts").isNumber();
  }

  /**
   * Event time = the {@code ts} field. Records without one are dropped by the filter right after the
   * source; until then they get the partition's current stream time, so they move nothing.
   */
  static final class TsExtractor implements TimestampExtractor {
    @Override
    public long extract(ConsumerRecord<Object, Object> record, long partitionTime) {
      if (record.value() instanceof JsonNode event && isPageView(event)) {
        return (long) Math.floor(event.get("ts").asDouble());
      }
      return Math.max(partitionTime, 0);
    }
  }

  /** JSON values as Jackson trees; a value that is not a JSON object deserializes to null. */
  static Serde<JsonNode> jsonSerde() {
    Serializer<JsonNode> serializer =
        (topic, node) -> {
          if (node == null) return null;
          try {
            return JSON.writeValueAsBytes(node);
          } catch (IOException e) {
            throw new UncheckedIOException(e);
          }
        };
    Deserializer<JsonNode> deserializer =
        (topic, bytes) -> {
          if (bytes == null) return null;
          try {
            JsonNode node = JSON.readTree(bytes);
            return node != null && node.isObject() ? node : null;
          } catch (IOException malformed) {
            return null;
          }
        };
    return Serdes.serdeFrom(serializer, deserializer);
  }

  /** The values of every {@code --config} argument. */
  static List<String> extraConfig(String[] argv) {
    List<String> out = new ArrayList<>();
    for (int i = 0; i + 1 < argv.length; i++) if (argv[i].equals("--config")) out.add(argv[++i]);
    return out;
  }

  /** {@code --name value} or {@code --name=value}; {@code --config} is read by {@link #extraConfig}. */
  static Map<String, String> parseArgs(String[] argv) {
    Map<String, String> out = new HashMap<>();
    for (int i = 0; i < argv.length; i++) {
      String arg = argv[i];
      if (arg.equals("--config")) {
        i++;
        continue;
      }
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
