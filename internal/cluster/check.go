package cluster

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/bookhub/bookhub/events"
)

// Report is the outcome of a run: what was written and what every
// subscriber got. OK reports whether every subscriber holds every event
// exactly once, in offset order.
type Report struct {
	Subscribers int
	// Written counts the events committed during the run: the "books"
	// offset at the end minus the one at the start.
	Written uint64
	// Acked counts REST writes answered 2xx.
	Acked int
	// Delivered counts event frames received by all subscribers,
	// duplicates included.
	Delivered int
	// Missing, Duplicated, OutOfOrder and SilentGaps sum the subscribers'
	// failures; each must be 0.
	Missing, Duplicated, OutOfOrder, SilentGaps int
	// Diverged counts complete, ordered subscribers whose events (the id
	// at each offset) differ from the first such subscriber's.
	Diverged int
	// Lost counts acknowledged writes with no event in the audited stream.
	Lost int
	// Resumes, RecoveredFalse, Incomplete and Discarded sum how often
	// subscribers resumed and what the hub told them.
	Resumes, RecoveredFalse, Incomplete, Discarded int
	Duration                                       time.Duration
	// Problems are the first few findings, for a failure message.
	Problems []string
}

// OK reports whether nothing was missing, duplicated, reordered, silently
// skipped, divergent or lost.
func (r Report) OK() bool {
	return r.Missing == 0 && r.Duplicated == 0 && r.OutOfOrder == 0 && r.SilentGaps == 0 &&
		r.Diverged == 0 && r.Lost == 0 && r.RecoveredFalse == 0
}

// String is the report on one line.
func (r Report) String() string {
	return fmt.Sprintf("subscribers=%d written=%d acked=%d delivered=%d missing=%d duplicated=%d out-of-order=%d "+
		"silent-gaps=%d diverged=%d lost-writes=%d resumes=%d recovered-false=%d incomplete=%d discarded=%d duration=%v",
		r.Subscribers, r.Written, r.Acked, r.Delivered, r.Missing, r.Duplicated, r.OutOfOrder,
		r.SilentGaps, r.Diverged, r.Lost, r.Resumes, r.RecoveredFalse, r.Incomplete, r.Discarded, r.Duration.Round(100*time.Millisecond))
}

// WaitAll waits until every subscriber received every event up to final,
// or ctx ends; it reports whether they all did.
func WaitAll(ctx context.Context, subs []*Subscriber, final uint64) bool {
	for {
		behind := 0
		for _, s := range subs {
			if !s.Reached(final) {
				behind++
			}
		}
		if behind == 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond): // subscribers advance on their own goroutines
		}
	}
}

// maxProblems bounds Report.Problems.
const maxProblems = 10

// Check compares what every subscriber got with the events committed
// between start and final (both read over REST), and the audited streams
// of Keep subscribers with the acknowledged writes.
func Check(subs []*Subscriber, start, final Position, acked []Write) Report {
	r := Report{Subscribers: len(subs), Written: final.Offset - start.Offset, Acked: len(acked)}
	problem := func(format string, args ...any) {
		if len(r.Problems) < maxProblems {
			r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
		}
	}
	var ref *Subscriber
	for i, s := range subs {
		st := s.Stats()
		r.Delivered += st.Delivered
		r.Duplicated += st.Duplicated
		r.OutOfOrder += st.OutOfOrder
		r.SilentGaps += st.SilentGaps
		r.Resumes += st.Resumes
		r.RecoveredFalse += st.RecoveredFalse
		r.Incomplete += st.Incomplete
		r.Discarded += st.Discarded
		missing := s.missing(final.Offset)
		r.Missing += missing
		if missing > 0 || st.Duplicated > 0 || st.OutOfOrder > 0 || st.SilentGaps > 0 || st.EpochChanges > 0 {
			problem("subscriber %d: missing %d, duplicated %d, out of order %d, silent gaps %d, epoch changes %d; connections %v; notes %q",
				i, missing, st.Duplicated, st.OutOfOrder, st.SilentGaps, st.EpochChanges, s.Connections(), st.Errors)
			continue // already counted; its hash differs for that reason
		}
		if s.Start != subs[0].Start {
			continue // a different window: no common sequence to compare
		}
		if ref == nil {
			ref = s
		} else if s.sum() != ref.sum() {
			r.Diverged++
			problem("subscriber %d: the event ids at some offsets differ from subscriber 0's", i)
		}
	}
	for _, s := range subs {
		if !s.Keep {
			continue
		}
		got := map[Write]bool{}
		for _, e := range s.Kept() {
			w := Write{Type: e.Type, BookID: e.BookID, Version: e.Version}
			if e.Type == string(events.BookDeleted) {
				w.Version = 0
			}
			got[w] = true
		}
		for _, w := range acked {
			if !got[w] {
				r.Lost++
				problem("acknowledged %s of book %d (version %d) is not in the stream", w.Type, w.BookID, w.Version)
			}
		}
		break // one audit is enough: the others are compared by hash
	}
	return r
}

// Summary joins the report's problems for a failure message.
func (r Report) Summary() string {
	if len(r.Problems) == 0 {
		return r.String()
	}
	return r.String() + "\n    " + strings.Join(r.Problems, "\n    ")
}
