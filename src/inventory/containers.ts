/**
 * What a cgroup path says about its owner. Kubelet names pod and container cgroups by fixed rules that
 * depend on the cgroup driver (systemd or cgroupfs), the pod's QoS class and the container runtime
 * (containerd, CRI-O, Docker); the same names appear under cgroup v1 controllers and in the v2 tree,
 * and may sit below a prefix (kind nodes, nested runtimes). From the path we get the pod UID, which
 * joins the API's pod, and the container id, which joins `status.containerStatuses[].containerID`.
 * Paths outside pods belong to the node, and to their systemd unit where there is one.
 */

export type QosClass = 'guaranteed' | 'burstable' | 'besteffort';
export type Runtime = 'containerd' | 'cri-o' | 'docker';
export type CgroupDriver = 'systemd' | 'cgroupfs';

export type CgroupOwner =
  | { kind: 'container'; podUid: string; qos: QosClass; driver: CgroupDriver; runtime: Runtime | undefined; containerId: string }
  | { kind: 'pod'; podUid: string; qos: QosClass; driver: CgroupDriver }
  | { kind: 'host'; unit: string | undefined };

const HEX_ID = /^[0-9a-f]{64}$/;
const UID = /^[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}$/;

/** Container cgroup names of the runtimes (systemd scopes, and CRI-O's under cgroupfs); crio-conmon is the pod's monitor. */
const SCOPES: [RegExp, Runtime][] = [
  [/^cri-containerd-([0-9a-f]{64})\.scope$/, 'containerd'],
  [/^crio-([0-9a-f]{64})\.scope$/, 'cri-o'],
  [/^crio-([0-9a-f]{64})$/, 'cri-o'], // CRI-O under the cgroupfs driver
  [/^docker-([0-9a-f]{64})\.scope$/, 'docker'],
];

function podOf(segment: string): { podUid: string; qos: QosClass | undefined; driver: CgroupDriver } | undefined {
  // systemd: kubepods-pod<uid>.slice, kubepods-burstable-pod<uid>.slice, kubepods-besteffort-pod<uid>.slice
  // (kind nodes prefix every slice with the kubelet's own: kubelet-kubepods-...)
  const sd = /^(?:[a-z]+-)*kubepods(?:-(burstable|besteffort))?-pod(.+)\.slice$/.exec(segment);
  if (sd && UID.test(sd[2]!)) return { podUid: sd[2]!.replaceAll('_', '-'), qos: sd[1] as QosClass | undefined, driver: 'systemd' };
  // cgroupfs: pod<uid>
  const fs = /^pod(.+)$/.exec(segment);
  if (fs && UID.test(fs[1]!)) return { podUid: fs[1]!.replaceAll('_', '-'), qos: undefined, driver: 'cgroupfs' };
  return undefined;
}

/** The QoS class from the segment before a pod's: burstable/besteffort parents, else guaranteed. */
function qosOf(parent: string | undefined): QosClass {
  if (parent === 'burstable' || parent?.endsWith('kubepods-burstable.slice')) return 'burstable';
  if (parent === 'besteffort' || parent?.endsWith('kubepods-besteffort.slice')) return 'besteffort';
  return 'guaranteed';
}

export function parseCgroupPath(path: string): CgroupOwner {
  const segments = path.split('/').filter(Boolean);
  // the last pod segment wins: nested setups put a whole kubepods tree below another container
  for (let i = segments.length - 1; i >= 0; i--) {
    const pod = podOf(segments[i]!);
    if (!pod) continue;
    const qos = pod.qos ?? qosOf(segments[i - 1]);
    const child = segments[i + 1];
    if (child === undefined) return { kind: 'pod', podUid: pod.podUid, qos, driver: pod.driver };
    for (const [re, runtime] of SCOPES) {
      const m = re.exec(child);
      if (m) return { kind: 'container', podUid: pod.podUid, qos, driver: pod.driver, runtime, containerId: m[1]! };
    }
    if (HEX_ID.test(child)) return { kind: 'container', podUid: pod.podUid, qos, driver: pod.driver, runtime: undefined, containerId: child };
    // crio-conmon-<id>.scope and anything else inside the pod: the pod's own
    return { kind: 'pod', podUid: pod.podUid, qos, driver: pod.driver };
  }
  const unit = [...segments].reverse().find((s) => /\.(service|scope|socket|mount|swap|timer)$/.test(s));
  return { kind: 'host', unit };
}

/** Splits `containerd://<id>` (status.containerStatuses[].containerID) into runtime and id. */
export function parseContainerId(containerID: string): { runtime: string; id: string } | undefined {
  const m = /^([a-z0-9-]+):\/\/([0-9a-f]+)$/.exec(containerID);
  return m ? { runtime: m[1]!, id: m[2]! } : undefined;
}
