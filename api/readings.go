package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/pioreactor/pio/fsm"
)

// readingKinds maps Pioreactor's time-series names to reading kinds.
var readingKinds = map[string]string{
	"od_readings":          "od",
	"growth_rates":         "growth_rate",
	"temperature_readings": "temperature",
	"dosing_events":        "dosing",
}

// storeReadings answers POST /api/cluster/readings on the leader: a worker's batch of readings.
func (s *Server) storeReadings(c *gin.Context) {
	var b fsm.RecordReadings
	if !decodeBody(c, &b) {
		return
	}
	for _, r := range b.Readings {
		if why := ValidUnitName(r.Unit); why != "" || r.Experiment == "" || r.Kind == "" || r.Time.IsZero() {
			abort(c, http.StatusBadRequest, "bad reading", "every reading needs pioreactor_unit, experiment, kind, time and value", "send readings as the worker runtime makes them")
			return
		}
	}
	if !s.apply(c, fsm.CmdRecordReadings, b) {
		return
	}
	c.JSON(http.StatusOK, gin.H{"stored": len(b.Readings)})
}

type point struct {
	X string  `json:"x"`
	Y float64 `json:"y"`
}

// timeSeries answers GET /api/experiments/{exp}/time_series/{series}
// (od_readings, growth_rates, temperature_readings, dosing_events) as
// Pioreactor's charts read it: {"series": [unit...], "data": [[{x, y}...]...]}.
// ?lookback=HOURS limits how far back (default: everything).
func (s *Server) timeSeries(c *gin.Context) {
	kind, ok := readingKinds[c.Param("series")]
	if !ok {
		abort(c, http.StatusNotFound, "no such time series", c.Param("series"), "use od_readings, growth_rates, temperature_readings or dosing_events")
		return
	}
	if !s.readable(c) {
		return
	}
	e, ok := s.lookupExperiment(c)
	if !ok {
		return
	}
	since := time.Time{}
	if lb := c.Query("lookback"); lb != "" {
		h, err := strconv.ParseFloat(lb, 64)
		if err != nil || h < 0 {
			abort(c, http.StatusBadRequest, "bad lookback", "lookback is a number of hours", "e.g. ?lookback=4")
			return
		}
		since = time.Now().Add(-time.Duration(h * float64(time.Hour)))
	}
	by, err := s.fsm.Readings(e.Experiment, kind, since)
	if err != nil {
		fail(c, err)
		return
	}
	units := fsm.SortedUnits(by)
	data := make([][]point, 0, len(units))
	for _, u := range units {
		pts := make([]point, 0, len(by[u]))
		for _, r := range by[u] {
			pts = append(pts, point{X: r.Time.Format(time.RFC3339Nano), Y: r.Value})
		}
		data = append(data, pts)
	}
	c.JSON(http.StatusOK, gin.H{"series": units, "data": data})
}
