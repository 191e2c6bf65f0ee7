package dev.sluice.bench;

import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.expr;
import static org.apache.spark.sql.functions.from_json;
import static org.apache.spark.sql.functions.not;
import static org.apache.spark.sql.functions.struct;
import static org.apache.spark.sql.functions.to_json;
import static org.apache.spark.sql.functions.window;

import java.time.Instant;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.streaming.StreamingQuery;
import org.apache.spark.sql.streaming.StreamingQueryListener;
import org.apache.spark.sql.streaming.Trigger;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import sun.misc.Signal;

/**
 * Sluice's page-views job (examples/page-views.ts) with Spark Structured Streaming, as a benchmark
 * peer: Kafka source from the earliest offsets, JSON {@code {page, user, ts}} parsed with a schema,
 * event time {@code timestamp_millis(ts)} with a 5 s watermark, counts per page in tumbling 10 s
 * windows in append mode (one final result per window, when the watermark passes its end), written to
 * Kafka keyed by page as {@code {"key":page,"windowStart":ms,"windowEnd":ms,"value":count}}.
 *
 * <p>Differences from Sluice that come from Spark itself, not from this job: the watermark is global
 * (max event time over all partitions minus 5 s, advanced between micro-batches), so no flush per
 * partition is needed; Spark's JSON parser ignores whatever follows the first complete JSON value
 * ({@code {...}}} is read as {@code {...}}, and there is no option against it), and it turns a
 * non-string {@code page} into its JSON text. Records that are not JSON at all, truncated or
 * single-quoted are dropped, as in Sluice.
 *
 * <p>Prints {@code FIRST_RECORD <epoch ms>} on stdout for the first micro-batch that read input: the
 * start time of that batch (its progress timestamp), printed when the batch's progress is reported.
 * Runs until SIGTERM/SIGINT, then stops the query and the session and exits 0.
 *
 * <p>{@code --job stateless} runs the benchmark's stateless job instead (bench/jobs/stateless.ts):
 * rows whose {@code page} and {@code user} are strings and whose user does not start with {@code
 * bot-}, with {@code path = lower(page)} added, written keyed by the input key. Spark needs a schema
 * to write the fields back, so "every other field" is the benchmark generators' fields ({@code page,
 * user, ts, seq, sent, pad}); fields a record lacks stay absent (to_json leaves nulls out).
 *
 * <p>Arguments: {@code --bootstrap --input --output --checkpoint-dir [--trigger-ms 1000]} (0: the
 * next batch starts as soon as the previous one ends) {@code [--job page-views|stateless]} {@code
 * [--verbose]} (one stderr line per batch).
 */
public final class PageViewsSpark {
  private PageViewsSpark() {}

  public static void main(String[] argv) throws Exception {
    Map<String, String> args = parseArgs(argv);
    String bootstrap = required(args, "bootstrap");
    String input = required(args, "input");
    String output = required(args, "output");
    String checkpointDir = required(args, "checkpoint-dir");
    long triggerMs = Long.parseLong(args.getOrDefault("trigger-ms", "1000"));
    boolean verbose = args.containsKey("verbose");
    String job = args.getOrDefault("job", "page-views");
    if (!job.equals("page-views") && !job.equals("stateless")) {
      throw new IllegalArgumentException("--job is page-views or stateless, got " + job);
    }

    SparkSession spark =
        SparkSession.builder()
            .appName("page-views-spark")
            .master("local[2]")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "8")
            // Everything stays on the loopback interface.
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .getOrCreate();
    spark.sparkContext().setLogLevel("WARN");

    AtomicBoolean first = new AtomicBoolean(true);
    spark
        .streams()
        .addListener(
            new StreamingQueryListener() {
              @Override
              public void onQueryStarted(QueryStartedEvent event) {}

              @Override
              public void onQueryProgress(QueryProgressEvent event) {
                var progress = event.progress();
                if (progress.numInputRows() > 0 && first.compareAndSet(true, false)) {
                  long startedAt = Instant.parse(progress.timestamp()).toEpochMilli();
                  System.out.println("FIRST_RECORD " + startedAt);
                  System.out.flush();
                }
                if (verbose) {
                  System.err.println(
                      "spark: batch "
                          + progress.batchId()
                          + " rows="
                          + progress.numInputRows()
                          + " durations="
                          + progress.durationMs());
                }
              }

              @Override
              public void onQueryIdle(QueryIdleEvent event) {}

              @Override
              public void onQueryTerminated(QueryTerminatedEvent event) {}
            });

    StructType schema =
        new StructType()
            .add("page", DataTypes.StringType)
            .add("user", DataTypes.StringType)
            .add("ts", DataTypes.LongType)
            // With a corrupt-record column, a malformed value yields nulls in every other field;
            // without it, Spark keeps the fields parsed before the error (a truncated `ts`, say).
            .add("_corrupt", DataTypes.StringType);
    Map<String, String> jsonOptions =
        Map.of(
            "mode", "PERMISSIVE",
            "columnNameOfCorruptRecord", "_corrupt",
            // Spark's default is true; JSON (and JSON.parse in Sluice) has no single quotes.
            "allowSingleQuotes", "false");

    Dataset<Row> source =
        spark
            .readStream()
            .format("kafka")
            .option("kafka.bootstrap.servers", bootstrap)
            .option("subscribe", input)
            .option("startingOffsets", "earliest")
            .load();
    Dataset<Row> records =
        job.equals("stateless") ? stateless(source, jsonOptions) : pageViews(source, schema, jsonOptions);

    StreamingQuery query =
        records
            .writeStream()
            .format("kafka")
            .outputMode("append")
            .option("kafka.bootstrap.servers", bootstrap)
            .option("topic", output)
            .option("checkpointLocation", checkpointDir)
            .trigger(Trigger.ProcessingTime(triggerMs))
            .start();

    // SIGTERM/SIGINT: main stops the query (the running batch ends, its offsets are committed to the
    // checkpoint), then the session, and exits 0 (a JVM ended by the default handler exits 143).
    CountDownLatch signalled = new CountDownLatch(1);
    for (String signal : new String[] {"TERM", "INT"}) {
      Signal.handle(new Signal(signal), s -> signalled.countDown());
    }

    int exitCode = 0;
    try {
      while (!query.awaitTermination(100)) {
        if (signalled.getCount() == 0) {
          query.stop();
          break;
        }
      }
    } catch (Exception e) {
      System.err.println("spark: query failed: " + e);
      exitCode = 1;
    }
    spark.stop();
    System.exit(exitCode);
  }

  /** The page-views query: counts per page in tumbling 10 s event-time windows; see the class comment. */
  static Dataset<Row> pageViews(Dataset<Row> source, StructType schema, Map<String, String> jsonOptions) {
    Dataset<Row> counts =
        source
            .select(from_json(col("value").cast("string"), schema, jsonOptions).as("e"))
            .select("e.page", "e.ts", "e._corrupt")
            .filter(col("_corrupt").isNull().and(col("page").isNotNull()).and(col("ts").isNotNull()))
            .withColumn("eventTime", expr("timestamp_millis(ts)"))
            .withWatermark("eventTime", "5 seconds")
            .groupBy(window(col("eventTime"), "10 seconds"), col("page"))
            .count();

    return counts.select(
        col("page").as("key"),
        to_json(
                struct(
                    col("page").as("key"),
                    expr("unix_millis(window.start)").as("windowStart"),
                    expr("unix_millis(window.end)").as("windowEnd"),
                    col("count").as("value")))
            .as("value"));
  }

  /** The stateless query; see the class comment. */
  static Dataset<Row> stateless(Dataset<Row> source, Map<String, String> jsonOptions) {
    StructType schema =
        new StructType()
            .add("page", DataTypes.StringType)
            .add("user", DataTypes.StringType)
            .add("ts", DataTypes.LongType)
            .add("seq", DataTypes.LongType)
            .add("sent", DataTypes.LongType)
            .add("pad", DataTypes.StringType)
            .add("_corrupt", DataTypes.StringType);
    return source
        .select(
            col("key").cast("string").as("key"),
            from_json(col("value").cast("string"), schema, jsonOptions).as("e"))
        .filter(
            col("e._corrupt")
                .isNull()
                .and(col("e.page").isNotNull())
                .and(col("e.user").isNotNull())
                .and(not(col("e.user").startsWith("bot-"))))
        .select(
            col("key"),
            to_json(
                    struct(
                        col("e.page").as("page"),
                        col("e.user").as("user"),
                        col("e.ts").as("ts"),
                        col("e.seq").as("seq"),
                        col("e.sent").as("sent"),
                        col("e.pad").as("pad"),
                        expr("lower(e.page)").as("path")))
                .as("value"));
  }

  static Map<String, String> parseArgs(String[] argv) {
    Map<String, String> out = new HashMap<>();
    for (int i = 0; i < argv.length; i++) {
      String arg = argv[i];
      if (!arg.startsWith("--")) throw new IllegalArgumentException("unexpected argument " + arg);
      int eq = arg.indexOf('=');
      if (eq > 0) {
        out.put(arg.substring(2, eq), arg.substring(eq + 1));
      } else if (arg.equals("--verbose")) {
        out.put("verbose", "true");
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
}
