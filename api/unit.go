package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/pioreactor/pio/gpio"
)

// The /unit_api routes are this node's own worker side; they are never forwarded.

// hardware answers GET /unit_api/hardware: LEDs, blinks, backend.
func (s *Server) hardware(c *gin.Context) {
	if s.cfg.Hardware == nil {
		abort(c, http.StatusNotFound, "no hardware", "this node has no hardware backend", "start it with --hardware sim or auto")
		return
	}
	out := gin.H{"hardware": s.cfg.Hardware.State()}
	st := s.cfg.Hardware.State()
	out["backend"], out["blinks"], out["last_blink"], out["led_on"] = st.Backend, st.Blinks, st.LastBlink, st.LED
	if sim, ok := s.cfg.Hardware.(*gpio.Sim); ok {
		out["plant"] = sim.PlantState()
	}
	c.JSON(http.StatusOK, out)
}

// hardwareCheck answers POST /unit_api/hardware/check: what this unit's
// backend found and its self-test (gpio.Check). It drives the LEDs, so it
// refuses while jobs run.
func (s *Server) hardwareCheck(c *gin.Context) {
	if s.cfg.Hardware == nil {
		abort(c, http.StatusNotFound, "no hardware", "this node has no hardware backend", "start it with --hardware sim or auto")
		return
	}
	if s.cfg.Jobs != nil {
		if running := s.cfg.Jobs.Running(); len(running) > 0 {
			abort(c, http.StatusConflict, "jobs are running", fmt.Sprintf("%d jobs run on %s (%s, …); the self-test turns the LEDs on and off", len(running), s.cfg.Name, running[0].Name),
				"stop this unit's jobs first (pio kill --all on the unit), then check again")
			return
		}
	}
	lines := gpio.Check(s.cfg.Hardware)
	ok := true
	for _, l := range lines {
		ok = ok && l.OK
	}
	c.JSON(http.StatusOK, gin.H{"unit": s.cfg.Name, "ok": ok, "checks": lines})
}

// unitBlink answers POST /unit_api/blink: the HAT's LED blinks; 200 when done.
func (s *Server) unitBlink(c *gin.Context) {
	if s.cfg.Hardware == nil {
		abort(c, http.StatusNotFound, "no hardware", "this node has no hardware backend", "start it with --hardware sim or auto")
		return
	}
	if err := s.cfg.Hardware.Blink(); err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"unit": s.cfg.Name, "blinked": true})
}

// unitReboot answers POST /unit_api/system/reboot with a task; the reboot
// starts once the answer is sent.
func (s *Server) unitReboot(c *gin.Context) {
	if s.cfg.Reboot == nil {
		abort(c, http.StatusNotImplemented, "reboot not available", "this node was started without a reboot method", "restart pio serve by hand")
		return
	}
	c.JSON(http.StatusAccepted, s.tasks.run(s.cfg.Name, func(ctx context.Context) (any, error) {
		if err := s.cfg.Reboot(); err != nil {
			return nil, err
		}
		return gin.H{"rebooting": true}, nil
	}))
}

// unitRemoved answers POST /unit_api/removed: the leader says this node was
// removed; the node checks with the cluster before it goes standalone.
func (s *Server) unitRemoved(c *gin.Context) {
	go s.mem.ConfirmRemoved(context.Background())
	c.JSON(http.StatusAccepted, gin.H{"checking": true})
}
