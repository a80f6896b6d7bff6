/* Constant-time integer log2 for histogram slots: five branch-free steps instead of a loop over the
 * bits, so the cost on a hot path (every scheduler switch) does not grow with the value. Plain C with
 * no BPF helpers, so the host compiler can check it against a reference (src/kernel/bits.test.ts). */
#ifndef PERISCOPE_BITS_BPF_H
#define PERISCOPE_BITS_BPF_H

/* floor(log2(v)) for v > 0; 0 for v == 0 */
static __always_inline __u32 log2_u32(__u32 v)
{
	__u32 r, shift;

	r = (v > 0xFFFF) << 4;
	v >>= r;
	shift = (v > 0xFF) << 3;
	v >>= shift;
	r |= shift;
	shift = (v > 0xF) << 2;
	v >>= shift;
	r |= shift;
	shift = (v > 0x3) << 1;
	v >>= shift;
	r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 hi = v >> 32;

	return hi ? log2_u32(hi) + 32 : log2_u32((__u32)v);
}

/* The histogram slot of v: floor(log2(v)), and slot 0 for 0 and 1; never past max_slot. */
static __always_inline __u32 log2_slot(__u64 v, __u32 max_slot)
{
	__u32 slot = log2_u64(v);

	return slot > max_slot ? max_slot : slot;
}

#endif
