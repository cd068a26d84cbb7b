package api

import (
	"github.com/pioreactor/pio/gpio"
	"net/http"
	"strconv"
	"strings"
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

// thinning reads how a time series is thinned out for a chart: Pioreactor's
// ?filter_mod_N=N keeps one point in N, its ?target_points=N and our
// ?max_points=M keep at most about N (M) points a unit, evenly spaced. It returns the step for a series of n points;
// on bad input it has answered 400.
func thinning(c *gin.Context) (func(n int) int, bool) {
	step := func(int) int { return 1 }
	if v := c.Query("filter_mod_N"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 1 {
			abort(c, http.StatusBadRequest, "bad filter_mod_N", v, "filter_mod_N is a number ≥ 1: one point in N is kept")
			return nil, false
		}
		step = func(int) int { return int(f) }
	}
	if v := c.Query("target_points"); v != "" { // Pioreactor's: at most about N points a unit
		m, err := strconv.Atoi(v)
		if err != nil || m <= 0 {
			abort(c, http.StatusBadRequest, "target_points must be > 0", v, "target_points is a whole number > 0: about that many points a unit are kept")
			return nil, false
		}
		prev := step
		step = func(n int) int { return max(prev(n), (n+m-1)/m) }
	}
	if v := c.Query("max_points"); v != "" {
		m, err := strconv.Atoi(v)
		if err != nil || m < 2 {
			abort(c, http.StatusBadRequest, "bad max_points", v, "max_points is a whole number ≥ 2")
			return nil, false
		}
		prev := step
		step = func(n int) int { return max(prev(n), (n+m-1)/m) }
	}
	return step, true
}

type point struct {
	X string  `json:"x"`
	Y float64 `json:"y"`
}

// timeSeries answers GET /api/experiments/{exp}/time_series/{series}
// (od_readings, growth_rates, temperature_readings, dosing_events, and the
// names of namedSeries) as Pioreactor's charts read it:
// {"series": [unit...], "data": [[{x, y}...]...]}. ?lookback=HOURS limits
// how far back (default: everything).
func (s *Server) timeSeries(c *gin.Context) {
	kind, ok := namedSeries(c.Param("series"))
	if !ok {
		abort(c, http.StatusNotFound, "no such time series", c.Param("series"), "use od_readings, growth_rates, temperature_readings or dosing_events")
		return
	}
	s.answerSeries(c, kind, "")
}

// answerSeries answers a time series of the experiment in the path: the
// readings of kind (none when kind is ""), of one unit unless unit is "".
func (s *Server) answerSeries(c *gin.Context, kind, unit string) {
	if !s.readable(c) {
		return
	}
	// An experiment that does not exist has no readings: empty, as Pioreactor's query answers.
	e := expParam(c)
	since := time.Time{}
	if lb := c.Query("lookback"); lb != "" {
		h, err := strconv.ParseFloat(lb, 64)
		if err != nil || h < 0 {
			abort(c, http.StatusBadRequest, "bad lookback", "lookback is a number of hours", "e.g. ?lookback=4")
			return
		}
		since = time.Now().Add(-time.Duration(h * float64(time.Hour)))
	}
	every, ok := thinning(c)
	if !ok {
		return
	}
	by := map[string][]fsm.Reading{}
	if kind != "" {
		var err error
		if by, err = s.fsm.Readings(e.Experiment, kind, since); err != nil {
			fail(c, err)
			return
		}
	}
	if unit != "" && unit != fsm.Broadcast {
		by = map[string][]fsm.Reading{unit: by[unit]}
		if len(by[unit]) == 0 {
			delete(by, unit)
		}
	}
	units := fsm.SortedUnits(by)
	data := make([][]point, 0, len(units))
	for _, u := range units {
		rs := by[u]
		n := every(len(rs))
		pts := make([]point, 0, len(rs)/n+1)
		for i, r := range rs {
			if i%n == 0 || i == len(rs)-1 { // the newest point is always kept
				pts = append(pts, point{X: r.Time.Format(time.RFC3339Nano), Y: r.Value})
			}
		}
		data = append(data, pts)
	}
	names := units
	if kind == "od" {
		// Pioreactor names OD series by unit and photodiode channel (see
		// [od_config.photodiode_channel] in GET /api/config/shared).
		names = make([]string, len(units))
		for i, u := range units {
			names[i] = u + "-" + gpio.ODSignalChannel
		}
	}
	c.JSON(http.StatusOK, gin.H{"series": names, "data": data})
}

// logs answers Pioreactor's log routes, newest first: GET /api/logs,
// /api/experiments/{exp}/logs and recent_logs, /api/workers/{unit}/experiments/{exp}/logs
// and recent_logs, /api/units/{unit}/logs. ?min_level (default INFO) and
// ?skip page through them as Pioreactor does: 100 lines a page, 50 recent
// lines of the last 24 hours. The experiment "$experiment" means, as in
// Pioreactor, the lines that belong to no experiment.
func (s *Server) logs(c *gin.Context) {
	s.answerLogs(c, c.Param("exp"))
}

// answerLogs answers the log lines of exp ("": of every experiment), of the
// unit in the path if there is one.
func (s *Server) answerLogs(c *gin.Context, exp string) {
	q := fsm.LogQuery{Experiment: exp, Limit: 100, MinLevel: "INFO"}
	if lvl := strings.ToUpper(c.Query("min_level")); lvl != "" { // Pioreactor takes info as INFO
		if _, ok := fsm.LogLevels[lvl]; !ok {
			abort(c, http.StatusBadRequest, "bad min_level", c.Query("min_level"), "use DEBUG, INFO, NOTICE, WARNING or ERROR (in any case)")
			return
		}
		q.MinLevel = lvl
	}
	if sk := c.Query("skip"); sk != "" {
		n, err := strconv.Atoi(sk)
		if err != nil || n < 0 {
			abort(c, http.StatusBadRequest, "bad skip", sk, "skip is a number of lines, e.g. ?skip=100")
			return
		}
		q.Skip = n
	}
	if strings.HasSuffix(c.FullPath(), "/recent_logs") {
		q.Limit, q.Skip, q.Since = 50, 0, time.Now().Add(-24*time.Hour)
	}
	// An experiment or unit that does not exist has no lines: [], as
	// Pioreactor's query answers ($experiment: the lines of no experiment).
	if !s.readable(c) {
		return
	}
	q.Unit = c.Param("unit")
	lines, err := s.fsm.Logs(q)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, lines)
}
