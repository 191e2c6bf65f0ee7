import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The benchmark's live load: page views produced at a fixed rate by Kafka's own Java producer, so
 * that the load reaches rates a kafkajs producer on a shared core cannot (bench/lib/generator.ts
 * compiles and runs it).
 *
 * <p>Each record is keyed by user and its value is {@code {"page","user","ts","seq","sent","pad"}}:
 * the clickstream of examples/generator/clickstream.ts (pages and users Zipf-skewed with the same
 * names and exponents, 1 in 25 users a bot), event time {@code ts} = now, except a share of records
 * displaced back by up to {@code --max-disorder-ms}; {@code seq} numbers the records from 0 and
 * {@code sent} is the wall time the record was handed to the producer (also its CreateTime). The
 * value is padded to {@code --record-size} bytes with a field every job ignores.
 *
 * <p>The rate is kept against the wall clock from the start: {@code floor(elapsed × rate)} records
 * are due at any moment, so a generator that falls behind catches up as fast as it can, and the
 * achieved rate it prints says whether it kept up. {@code linger.ms=5}: the producer's batching
 * adds at most 5 ms to a record's latency.
 *
 * <p>Arguments: {@code --bootstrap --topic --rate N --seconds S [--record-size 100] [--seed 7]
 * [--users 2000] [--pages 60] [--out-of-order 0.05] [--max-disorder-ms 3000]}. Prints {@code SENT
 * <records> <elapsed ms> <failed sends>} when done.
 */
public final class LoadGenerator {
  private LoadGenerator() {}

  public static void main(String[] argv) throws Exception {
    Map<String, String> args = new HashMap<>();
    for (int i = 0; i + 1 < argv.length; i += 2) args.put(argv[i].replaceFirst("^--", ""), argv[i + 1]);
    String bootstrap = required(args, "bootstrap");
    String topic = required(args, "topic");
    double rate = Double.parseDouble(required(args, "rate"));
    double seconds = Double.parseDouble(required(args, "seconds"));
    int recordSize = Integer.parseInt(args.getOrDefault("record-size", "100"));
    SplittableRandom random = new SplittableRandom(Long.parseLong(args.getOrDefault("seed", "7")));
    String[] pages = pageNames(Integer.parseInt(args.getOrDefault("pages", "60")));
    String[] users = userNames(Integer.parseInt(args.getOrDefault("users", "2000")));
    double outOfOrder = Double.parseDouble(args.getOrDefault("out-of-order", "0.05"));
    int maxDisorderMs = Integer.parseInt(args.getOrDefault("max-disorder-ms", "3000"));
    double[] pageCdf = zipfCdf(pages.length, 1.1);
    double[] userCdf = zipfCdf(users.length, 0.8);

    Properties props = new Properties();
    props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    // Idempotent (so acks=all): a retried batch must not put a record into the input twice.
    props.put(ProducerConfig.ACKS_CONFIG, "all");
    props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
    props.put(ProducerConfig.LINGER_MS_CONFIG, "5");
    props.put(ProducerConfig.BATCH_SIZE_CONFIG, "131072");
    props.put(ProducerConfig.BUFFER_MEMORY_CONFIG, String.valueOf(64L * 1024 * 1024));
    props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());

    AtomicLong failed = new AtomicLong();
    long sent = 0;
    StringBuilder value = new StringBuilder(recordSize + 64);
    try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
      long start = System.currentTimeMillis();
      long end = start + (long) (seconds * 1000);
      for (long now = start; now < end; now = System.currentTimeMillis()) {
        long due = (long) ((now - start) * rate / 1000) - sent;
        if (due <= 0) {
          LockSupport.parkNanos(500_000);
          continue;
        }
        for (long i = 0; i < due; i++) {
          String page = pages[draw(pageCdf, random)];
          String user = users[draw(userCdf, random)];
          long ts = random.nextDouble() < outOfOrder ? now - 1 - random.nextInt(maxDisorderMs) : now;
          value.setLength(0);
          value.append("{\"page\":\"").append(page).append("\",\"user\":\"").append(user);
          value.append("\",\"ts\":").append(ts).append(",\"seq\":").append(sent).append(",\"sent\":").append(now);
          int pad = recordSize - value.length() - 10;
          value.append(",\"pad\":\"");
          for (int p = 0; p < pad; p++) value.append('x');
          value.append("\"}");
          producer.send(
              new ProducerRecord<>(
                  topic,
                  null,
                  now,
                  user.getBytes(StandardCharsets.UTF_8),
                  value.toString().getBytes(StandardCharsets.UTF_8)),
              (metadata, error) -> {
                if (error != null) failed.incrementAndGet();
              });
          sent++;
        }
      }
      producer.flush();
      System.out.println("SENT " + sent + " " + (System.currentTimeMillis() - start) + " " + failed.get());
    }
  }

  /** As pageNames() in examples/generator/clickstream.ts. */
  static String[] pageNames(int count) {
    String[] common = {"/", "/home", "/products", "/search", "/cart", "/checkout", "/login", "/account", "/help"};
    String[] names = new String[count];
    for (int n = 0, i = 0; n < count; n++) {
      if (n < common.length) {
        names[n] = common[n];
      } else {
        names[n] = i % 4 == 3 ? "/blog/Post-" + ((i - 3) / 4 + 1) : "/products/SKU-" + (1000 + i);
        i++;
      }
    }
    return names;
  }

  /** As userNames() in examples/generator/clickstream.ts. */
  static String[] userNames(int count) {
    String[] names = new String[count];
    for (int i = 0; i < count; i++) names[i] = i % 25 == 2 ? "bot-" + i : "user-" + i;
    return names;
  }

  static double[] zipfCdf(int n, double exponent) {
    double[] cdf = new double[n];
    double total = 0;
    for (int i = 0; i < n; i++) {
      total += 1 / Math.pow(i + 1, exponent);
      cdf[i] = total;
    }
    return cdf;
  }

  /** Rank r with probability proportional to 1 / (r + 1)^exponent. */
  static int draw(double[] cdf, SplittableRandom random) {
    double x = random.nextDouble() * cdf[cdf.length - 1];
    int lo = 0;
    int hi = cdf.length - 1;
    while (lo < hi) {
      int mid = (lo + hi) >>> 1;
      if (cdf[mid] > x) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  static String required(Map<String, String> args, String name) {
    String v = args.get(name);
    if (v == null) throw new IllegalArgumentException("--" + name + " is required");
    return v;
  }
}
