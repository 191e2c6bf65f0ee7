/**
 * Each replica's HTTP address, advertised in the consumer group, so that any replica can find the one
 * that owns a partition (queryable state: `src/query/`). Kafka Streams does the same with
 * `application.server` in its subscription's user data.
 *
 * - `advertisingAssigner(url)` is the group's partition assigner: kafkajs's own RoundRobin, unchanged
 *   (same protocol name and version, its `assign` called as it is, so a group mixing this version with
 *   older ones agrees on the protocol and assigns exactly as before), whose member metadata carries the
 *   replica's URL as `userData`.
 * - `membersOf(description)` reads a group description (admin `describeGroups`): per member its
 *   advertised URL (undefined for a member of an older version, or of another client) and its
 *   assignment.
 */
import { AssignerProtocol, PartitionAssigners, type GroupDescription, type PartitionAssigner } from 'kafkajs';

/** `userData` format: JSON, versioned so that more can be advertised later. */
interface Advertised {
  v: 1;
  url: string;
}

export function encodeAddress(url: string): Buffer {
  return Buffer.from(JSON.stringify({ v: 1, url } satisfies Advertised), 'utf8');
}

/** The URL in a member's `userData`, or undefined when it advertises none (empty, or not this format). */
export function decodeAddress(userData: Buffer | null | undefined): string | undefined {
  if (!userData || userData.length === 0) return undefined;
  try {
    const parsed = JSON.parse(userData.toString('utf8')) as Partial<Advertised> | null;
    return parsed && typeof parsed.url === 'string' && parsed.url.length > 0 ? parsed.url : undefined;
  } catch {
    return undefined;
  }
}

/** kafkajs's RoundRobin assigner, advertising `url` in this member's metadata. */
export function advertisingAssigner(url: string): PartitionAssigner {
  const userData = encodeAddress(url);
  return (config) => {
    const roundRobin = PartitionAssigners.roundRobin(config);
    return {
      name: roundRobin.name,
      version: roundRobin.version,
      assign: (group) => roundRobin.assign(group),
      protocol: ({ topics }) => ({
        name: roundRobin.name,
        metadata: AssignerProtocol.MemberMetadata.encode({ version: roundRobin.version, topics, userData }),
      }),
    };
  };
}

export interface GroupMemberInfo {
  memberId: string;
  /** What the member advertises; undefined when it advertises nothing. */
  url: string | undefined;
  /** Its partitions, by topic (empty while the group is rebalancing). */
  assignment: Record<string, number[]>;
}

/** The members of a described group with their advertised URLs and assignments; one that cannot be read is skipped. */
export function membersOf(group: Pick<GroupDescription, 'members'>): GroupMemberInfo[] {
  const members: GroupMemberInfo[] = [];
  for (const member of group.members) {
    try {
      const metadata = AssignerProtocol.MemberMetadata.decode(member.memberMetadata);
      const assignment =
        member.memberAssignment.length > 0 ? AssignerProtocol.MemberAssignment.decode(member.memberAssignment) : null;
      members.push({
        memberId: member.memberId,
        url: decodeAddress(metadata?.userData),
        assignment: assignment?.assignment ?? {},
      });
    } catch {
      // Not kafkajs's consumer protocol (another client in the group): it advertises nothing we can read.
    }
  }
  return members;
}
