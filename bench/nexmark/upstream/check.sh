#!/usr/bin/env bash
# Compares bench/nexmark/model.ts with the upstream Java generator it ports, event for event.
#
#   bench/nexmark/upstream/check.sh <nexmark/nexmark git directory> [events] [rate] [outOfOrderGroupSize] [seed]
#
# Takes the generator classes of github.com/nexmark/nexmark at commit 6b3646c (a clone or a bare
# mirror), seeds their three SplittableRandoms as model.ts does (seed, seed + 1, seed + 2), stubs the
# Flink classes they import (NexmarkConfiguration with the upstream defaults, Preconditions,
# @Nullable), compiles them with a small main that prints each event as model.ts's JSON, and diffs
# that with `node bench/nexmark/upstream/dump.ts`. Needs a JDK 17+ (javac) and Node 22.18+.
set -euo pipefail
upstream=${1:?usage: check.sh <nexmark git dir> [events] [rate] [group] [seed]}
events=${2:-20000} rate=${3:-10000} group=${4:-1} seed=${5:-42}
commit=6b3646c3baec701f1fa74baf938d235f742e5d3c
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pkg=com/github/nexmark/flink
src=nexmark-flink/src/main/java/$pkg
for f in generator/GeneratorConfig generator/NexmarkGenerator generator/model/AuctionGenerator \
  generator/model/BidGenerator generator/model/LongGenerator generator/model/PersonGenerator \
  generator/model/PriceGenerator generator/model/StringsGenerator model/Person model/Auction model/Bid model/Event; do
  mkdir -p "$work/src/$pkg/$(dirname $f)"
  git -C "$upstream" show "$commit:$src/$f.java" >"$work/src/$pkg/$f.java"
done
cd "$work/src/$pkg"
seedOf='Long.getLong("seed", 42L)'
sed -i "s/SplittableRandom random = new SplittableRandom();/SplittableRandom random = new SplittableRandom($seedOf);/" generator/NexmarkGenerator.java
sed -i "s/static final SplittableRandom random = new SplittableRandom();/static final SplittableRandom random = new SplittableRandom($seedOf + 1);/" generator/model/BidGenerator.java
sed -i "s/nextExactString(new SplittableRandom(), 1024 \* 1024)/nextExactString(new SplittableRandom($seedOf + 2), 1024 * 1024)/" generator/model/StringsGenerator.java
[ "$(grep -c "$seedOf" generator/NexmarkGenerator.java generator/model/BidGenerator.java generator/model/StringsGenerator.java | grep -c ':1')" = 3 ] ||
  { echo "upstream's random fields moved: update the seeding above" >&2; exit 1; }
mkdir -p utils "$work/src/org/apache/flink/util" "$work/src/javax/annotation"
cat >"$work/src/org/apache/flink/util/Preconditions.java" <<'JAVA'
package org.apache.flink.util;
public class Preconditions { public static <T> T checkNotNull(T t) { if (t == null) throw new NullPointerException(); return t; } }
JAVA
echo 'package javax.annotation; public @interface Nullable {}' >"$work/src/javax/annotation/Nullable.java"
cat >utils/NexmarkUtils.java <<'JAVA'
package com.github.nexmark.flink.utils;
public class NexmarkUtils { public enum RateShape { SQUARE; public int stepLengthSec(int ratePeriodSec) { return (ratePeriodSec + 1) / 2; } } }
JAVA
cat >NexmarkConfiguration.java <<'JAVA'
package com.github.nexmark.flink;
import com.github.nexmark.flink.utils.NexmarkUtils;
public class NexmarkConfiguration implements java.io.Serializable {
  public int numEventGenerators = 1; public NexmarkUtils.RateShape rateShape = NexmarkUtils.RateShape.SQUARE;
  public int firstEventRate = Integer.getInteger("rate", 10000); public int ratePeriodSec = 600;
  public int personProportion = 1; public int auctionProportion = 3; public int bidProportion = 46;
  public int avgPersonByteSize = 200; public int avgAuctionByteSize = 500; public int avgBidByteSize = 100;
  public int hotAuctionRatio = 2; public int hotSellersRatio = 4; public int hotBiddersRatio = 4;
  public int numInFlightAuctions = 100; public int numActivePeople = 1000;
  public long occasionalDelaySec = 3; public double probDelayedEvent = 0.1;
  public long outOfOrderGroupSize = Long.getLong("group", 1L); public boolean isSourceKeepAlive = false;
  public boolean maxEmitSpeed = true;
}
JAVA
cat >"$work/src/Dump.java" <<'JAVA'
import com.github.nexmark.flink.NexmarkConfiguration;
import com.github.nexmark.flink.generator.*;
import com.github.nexmark.flink.model.*;
public class Dump {
  static String q(String s) {
    StringBuilder b = new StringBuilder("\"");
    for (char c : s.toCharArray()) { if (c == '"' || c == '\\') b.append('\\'); b.append(c); }
    return b.append('"').toString();
  }
  public static void main(String[] a) {
    GeneratorConfig cfg = new GeneratorConfig(new NexmarkConfiguration(), 1704067200000L, 1, Long.parseLong(a[0]), -1, 1);
    NexmarkGenerator g = new NexmarkGenerator(cfg);
    StringBuilder out = new StringBuilder();
    while (g.hasNext()) {
      Event e = g.next().event;
      if (e.newPerson != null) { Person p = e.newPerson; out.append("{\"type\":\"person\",\"person\":{\"id\":" + p.id + ",\"name\":" + q(p.name) + ",\"emailAddress\":" + q(p.emailAddress) + ",\"creditCard\":" + q(p.creditCard) + ",\"city\":" + q(p.city) + ",\"state\":" + q(p.state) + ",\"dateTime\":" + p.dateTime.toEpochMilli() + ",\"extra\":" + q(p.extra) + "}}"); }
      else if (e.newAuction != null) { Auction x = e.newAuction; out.append("{\"type\":\"auction\",\"auction\":{\"id\":" + x.id + ",\"itemName\":" + q(x.itemName) + ",\"description\":" + q(x.description) + ",\"initialBid\":" + x.initialBid + ",\"reserve\":" + x.reserve + ",\"dateTime\":" + x.dateTime.toEpochMilli() + ",\"expires\":" + x.expires.toEpochMilli() + ",\"seller\":" + x.seller + ",\"category\":" + x.category + ",\"extra\":" + q(x.extra) + "}}"); }
      else { Bid b = e.bid; out.append("{\"type\":\"bid\",\"bid\":{\"auction\":" + b.auction + ",\"bidder\":" + b.bidder + ",\"price\":" + b.price + ",\"channel\":" + q(b.channel) + ",\"url\":" + q(b.url) + ",\"dateTime\":" + b.dateTime.toEpochMilli() + ",\"extra\":" + q(b.extra) + "}}"); }
      out.append('\n');
    }
    System.out.print(out);
  }
}
JAVA
cd "$work"
javac -nowarn -d out $(find src -name '*.java') 2>/dev/null
java -Dseed="$seed" -Drate="$rate" -Dgroup="$group" -cp out Dump "$events" >java.jsonl
node "$here/dump.ts" "$events" "$rate" "$group" "$seed" >ts.jsonl
if cmp -s java.jsonl ts.jsonl; then
  echo "same $events events (rate $rate, group $group, seed $seed); sha256 $(sha256sum <ts.jsonl | cut -c1-64)"
else
  echo "differ: first difference at line $(cmp java.jsonl ts.jsonl | awk '{print $NF}')" >&2
  diff <(head -c 100000 java.jsonl) <(head -c 100000 ts.jsonl) | head -4 >&2
  exit 1
fi
