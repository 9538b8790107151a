package loadtest_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bookhub/bookhub/loadtest"
)

// exactQuantile is the nearest-rank quantile of sorted samples.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

func TestHistogramQuantile(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	seq := func(n int, f func(i int) time.Duration) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	tests := []struct {
		name    string
		samples []time.Duration
		// want pins exact answers where the bucket holds a single value.
		want map[float64]time.Duration
	}{
		{"SingleValue", []time.Duration{42 * time.Millisecond}, map[float64]time.Duration{
			0: 42 * time.Millisecond, 0.5: 42 * time.Millisecond, 0.99: 42 * time.Millisecond, 1: 42 * time.Millisecond}},
		{"SmallValuesAreExact", seq(100, func(i int) time.Duration { return time.Duration(i + 1) }), map[float64]time.Duration{
			0: 1, 0.5: 50, 0.95: 95, 0.99: 99, 0.999: 100, 1: 100}},
		{"NearestRankNotInterpolated", []time.Duration{10, 20, 30, 40}, map[float64]time.Duration{
			0.25: 10, 0.26: 20, 0.5: 20, 0.75: 30, 0.76: 40}},
		{"UniformMilliseconds", seq(1000, func(i int) time.Duration { return time.Duration(i+1) * time.Millisecond }), nil},
		{"Constant", seq(500, func(int) time.Duration { return 3 * time.Second }), map[float64]time.Duration{
			0.5: 3 * time.Second, 0.99: 3 * time.Second}},
		{"LongTail", seq(10000, func(i int) time.Duration {
			if i%100 == 0 {
				return time.Duration(rng.Int64N(int64(5 * time.Second)))
			}
			return time.Duration(rng.Int64N(int64(20*time.Millisecond))) + time.Millisecond
		}), nil},
		{"Exponential", seq(5000, func(int) time.Duration {
			return time.Duration(rng.ExpFloat64() * float64(10*time.Millisecond))
		}), nil},
		{"NegativeCountsAsZero", []time.Duration{-5, 7}, map[float64]time.Duration{0.5: 0, 1: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h loadtest.Histogram
			for _, d := range tt.samples {
				h.Record(d)
			}
			sorted := slices.Clone(tt.samples)
			for i := range sorted {
				sorted[i] = max(sorted[i], 0)
			}
			slices.Sort(sorted)
			for _, q := range []float64{0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1} {
				got, exact := h.Quantile(q), exactQuantile(sorted, q)
				if got < exact || float64(got) > float64(exact)*(1+1.0/128)+1 {
					t.Errorf("Quantile(%v) = %v, exact %v: outside [exact, exact+0.78%%]", q, got, exact)
				}
				if want, ok := tt.want[q]; ok && got != want {
					t.Errorf("Quantile(%v) = %v, want %v", q, got, want)
				}
			}
			if h.Count() != uint64(len(sorted)) || h.Min() != sorted[0] || h.Max() != sorted[len(sorted)-1] {
				t.Errorf("Count/Min/Max = %d/%v/%v, want %d/%v/%v", h.Count(), h.Min(), h.Max(), len(sorted), sorted[0], sorted[len(sorted)-1])
			}
			var sum time.Duration
			for _, d := range sorted {
				sum += d
			}
			if want := sum / time.Duration(len(sorted)); h.Mean() != want {
				t.Errorf("Mean = %v, want %v", h.Mean(), want)
			}
		})
	}
}

func TestHistogramEmpty(t *testing.T) {
	var h loadtest.Histogram
	if h.Quantile(0.99) != 0 || h.Min() != 0 || h.Max() != 0 || h.Mean() != 0 || h.Count() != 0 {
		t.Fatal("empty histogram reports non-zero statistics")
	}
}

func TestHistogramQuantileClampsOutOfRange(t *testing.T) {
	var h loadtest.Histogram
	h.Record(time.Millisecond)
	h.Record(time.Second)
	for _, q := range []float64{-1, math.NaN()} {
		if got := h.Quantile(q); got < time.Millisecond || got > time.Millisecond+time.Millisecond/128 {
			t.Errorf("Quantile(%v) = %v, want the minimum's bucket", q, got)
		}
	}
	if got := h.Quantile(7); got != time.Second {
		t.Errorf("Quantile(7) = %v, want the maximum", got)
	}
}

func TestHistogramHugeValuesKeepExactMax(t *testing.T) {
	var h loadtest.Histogram
	h.Record(3 * time.Hour)
	if h.Max() != 3*time.Hour || h.Quantile(1) != 3*time.Hour {
		t.Fatalf("Max = %v, Quantile(1) = %v; want 3h for both", h.Max(), h.Quantile(1))
	}
}

func TestHistogramConcurrentRecord(t *testing.T) {
	var h loadtest.Histogram
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				h.Record(time.Duration(g*1000+i+1) * time.Microsecond)
			}
		})
	}
	wg.Wait()
	if h.Count() != 8000 || h.Min() != time.Microsecond || h.Max() != 8000*time.Microsecond {
		t.Fatalf("Count/Min/Max = %d/%v/%v, want 8000/1µs/8ms", h.Count(), h.Min(), h.Max())
	}
	if p50 := h.Quantile(0.5); p50 < 4000*time.Microsecond || p50 > 4032*time.Microsecond {
		t.Errorf("p50 = %v, want about 4ms", p50)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h loadtest.Histogram
	b.RunParallel(func(pb *testing.PB) {
		d := time.Duration(1)
		for pb.Next() {
			d = d*7%(50*time.Millisecond) + time.Microsecond
			h.Record(d)
		}
	})
}

func BenchmarkHistogramQuantile(b *testing.B) {
	var h loadtest.Histogram
	for i := range 100000 {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for b.Loop() {
		_ = h.Quantile(0.99)
	}
}
