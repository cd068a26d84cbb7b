package trust

import (
	"log/slog"
	"sync"
	"time"
)

// Refusals logs attempts refused for lack of trust (no certificate, a wrong
// token, another cluster's key), at most once per source and reason every
// interval, so that a stranger flooding a port cannot flood the log (and the
// SD card) too. Suppressed attempts are counted in the next line.
type Refusals struct {
	log      *slog.Logger
	interval time.Duration

	mu   sync.Mutex
	seen map[refusalKey]*refusalCount
}

type refusalKey struct{ source, reason string }

type refusalCount struct {
	last       time.Time
	suppressed int
}

// maxRefusalSources bounds the sources remembered; past it the memory is reset.
const maxRefusalSources = 4096

// NewRefusals returns a refusal log writing to log, once per source and reason every interval.
func NewRefusals(log *slog.Logger, interval time.Duration) *Refusals {
	return &Refusals{log: log, interval: interval, seen: map[refusalKey]*refusalCount{}}
}

// Refused records that source (an address) was refused for reason, with
// details; it logs a warning unless it logged the same recently.
func (r *Refusals) Refused(source, reason string, details ...any) {
	if r == nil {
		return
	}
	now := time.Now()
	k := refusalKey{source, reason}
	r.mu.Lock()
	c, ok := r.seen[k]
	if !ok {
		if len(r.seen) >= maxRefusalSources {
			r.seen = map[refusalKey]*refusalCount{}
		}
		c = &refusalCount{}
		r.seen[k] = c
	}
	if ok && now.Sub(c.last) < r.interval {
		c.suppressed++
		r.mu.Unlock()
		return
	}
	suppressed := c.suppressed
	c.last, c.suppressed = now, 0
	r.mu.Unlock()
	args := append([]any{"from", source}, details...)
	if suppressed > 0 {
		args = append(args, "more_refused_since_last_line", suppressed)
	}
	r.log.Warn("refused: "+reason, args...)
}
