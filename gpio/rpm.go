package gpio

import (
	"time"

	"periph.io/x/conn/v3/gpio"
)

// edgePin is a GPIO input that reports edges (periph's gpio.PinIn).
type edgePin interface {
	WaitForEdge(timeout time.Duration) bool
}

var _ edgePin = gpio.PinIn(nil)

// rpmMeter measures the stirrer's speed from the hall sensor: one falling
// edge per turn of the stir bar's magnet. It averages the time between edges
// over a window, as Pioreactor does (reliable up to ~2,000 RPM on a Pi).
type rpmMeter struct {
	pin edgePin
	now func() time.Time
}

// measure returns the RPM over window; 0 when fewer than two edges came.
func (m rpmMeter) measure(window time.Duration) float64 {
	now := m.now
	if now == nil {
		now = time.Now
	}
	start := now()
	end := start.Add(window)
	var first, last time.Time
	n := 0
	for {
		left := end.Sub(now())
		if left <= 0 {
			break
		}
		if !m.pin.WaitForEdge(left) {
			break
		}
		t := now()
		if n == 0 {
			first = t
		}
		last = t
		n++
	}
	if n < 2 || !last.After(first) {
		return 0
	}
	return float64(n-1) * 60 / last.Sub(first).Seconds()
}
