package loadtest

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// The histogram is log-linear, like HdrHistogram: values below 2^subBits
// nanoseconds get one exact bucket each; above that every power of two is
// split into 2^(subBits-1) equal buckets, so a bucket is never wider than
// 1/128 (0.78%) of the values it holds. That bounds the error of every
// quantile without keeping the samples, which matters because a run records
// one latency per write per subscriber (easily 10^8 values).
const (
	subBits     = 8
	subCount    = 1 << subBits // exact buckets at the bottom
	halfSub     = subCount / 2 // buckets per power of two above them
	maxExp      = 42           // 2^42 ns is about 73 minutes
	bucketCount = subCount + (maxExp-subBits)*halfSub
)

// Histogram records durations and answers quantile queries with a relative
// error of at most 1/128: Quantile never reports less than the exact
// nearest-rank value, nor more than that value plus 0.78%. Values above about
// 73 minutes land in the top bucket; Max stays exact.
//
// The zero value is ready to use. All methods are safe for concurrent use; a
// Record is a few atomic adds, with no lock.
type Histogram struct {
	counts [bucketCount]atomic.Uint64
	total  atomic.Uint64
	sum    atomic.Uint64
	max    atomic.Uint64
	// minC holds the bitwise complement of the minimum, so that the zero
	// value means "no sample yet" without an initialisation step.
	minC atomic.Uint64
}

// bucketOf returns the bucket index of a value in nanoseconds.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	exp := bits.Len64(v) - subBits // >= 1
	if exp > maxExp-subBits {
		return bucketCount - 1
	}
	sub := v >> uint(exp) // in [halfSub, subCount)
	return subCount + (exp-1)*halfSub + int(sub) - halfSub
}

// bucketHigh returns the largest value that falls into bucket i.
func bucketHigh(i int) uint64 {
	if i < subCount {
		return uint64(i)
	}
	exp := (i-subCount)/halfSub + 1
	sub := uint64((i-subCount)%halfSub + halfSub)
	return (sub+1)<<uint(exp) - 1
}

// Record adds one duration. Negative durations (a clock oddity) count as 0.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d)
	}
	h.counts[bucketOf(v)].Add(1)
	h.total.Add(1)
	h.sum.Add(v)
	for {
		cur := h.max.Load()
		if v <= cur || h.max.CompareAndSwap(cur, v) {
			break
		}
	}
	for {
		cur := h.minC.Load()
		if v >= ^cur || h.minC.CompareAndSwap(cur, ^v) {
			break
		}
	}
}

// Count returns how many durations were recorded.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Max returns the largest recorded duration, exactly; 0 when empty.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Min returns the smallest recorded duration, exactly; 0 when empty.
func (h *Histogram) Min() time.Duration {
	if h.Count() == 0 {
		return 0
	}
	return time.Duration(^h.minC.Load())
}

// Mean returns the arithmetic mean, exactly; 0 when empty.
func (h *Histogram) Mean() time.Duration {
	n := h.Count()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Quantile returns the q-quantile (q in [0,1], e.g. 0.99 for p99) by the
// nearest-rank method: the smallest recorded value v such that at least
// ceil(q*n) values are <= v, rounded up to the top of its bucket and clamped
// to [Min, Max]. It returns 0 when the histogram is empty; q outside [0,1] is
// clamped.
func (h *Histogram) Quantile(q float64) time.Duration {
	var counts [bucketCount]uint64
	var n uint64
	for i := range counts {
		counts[i] = h.counts[i].Load()
		n += counts[i]
	}
	if n == 0 {
		return 0
	}
	v := quantileOf(counts[:], n, q)
	return time.Duration(min(max(v, uint64(h.Min())), uint64(h.Max())))
}

// snapshot copies the bucket counts into dst (len bucketCount), for interval
// arithmetic (the difference of two snapshots is the histogram of the values
// recorded in between).
func (h *Histogram) snapshot(dst []uint64) {
	for i := range dst {
		dst[i] += h.counts[i].Load()
	}
}

// quantileOf is Quantile over raw bucket counts whose sum is n (> 0).
func quantileOf(counts []uint64, n uint64, q float64) uint64 {
	if math.IsNaN(q) || q < 0 {
		q = 0
	}
	if q > 1 {
		q = 1
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	var cum uint64
	for i, c := range counts {
		cum += c
		if cum >= rank {
			return bucketHigh(i)
		}
	}
	return bucketHigh(len(counts) - 1)
}

// merge adds o's values to h. o must not be recorded into concurrently.
func (h *Histogram) merge(o *Histogram) {
	n := o.total.Load()
	if n == 0 {
		return
	}
	for i := range h.counts {
		if c := o.counts[i].Load(); c > 0 {
			h.counts[i].Add(c)
		}
	}
	h.total.Add(n)
	h.sum.Add(o.sum.Load())
	if m := o.max.Load(); m > h.max.Load() {
		h.max.Store(m)
	}
	if m := ^o.minC.Load(); m < ^h.minC.Load() {
		h.minC.Store(^m)
	}
}
