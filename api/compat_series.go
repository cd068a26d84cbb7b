package api

import (
	"net/http"
	"regexp"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/pioreactor/pio/fsm"
)

// noData marks a Pioreactor time series that pio does not produce: it is
// answered as Pioreactor answers a series without data, {"series": [], "data": []}.
const noData = ""

// moreSeries are Pioreactor's named time series beyond readingKinds. pio's OD
// is not calibrated, so its raw OD readings are its OD readings; it has no
// normalized OD (od_readings_filtered) and no fused OD (od_readings_fused).
var moreSeries = map[string]string{
	"raw_od_readings":      "od",
	"od_readings_filtered": noData,
	"od_readings_fused":    noData,
}

// namedSeries returns the reading kind of a time series of Pioreactor's
// /time_series/{name} routes (noData for one pio does not produce).
func namedSeries(name string) (string, bool) {
	if k, ok := readingKinds[name]; ok {
		return k, true
	}
	k, ok := moreSeries[name]
	return k, ok
}

// seriesColumns maps the tables and value columns of Pioreactor's database,
// as its generic route /time_series/{data_source}/{column} names them, to
// pio's reading kinds: those pio produces, and noData for those of
// Pioreactor's charts that pio does not produce.
var seriesColumns = map[string]map[string]string{
	"od_readings":          {"od_reading": "od"},
	"raw_od_readings":      {"od_reading": "od"},
	"growth_rates":         {"rate": "growth_rate"},
	"temperature_readings": {"temperature_c": "temperature"},
	"dosing_events":        {"volume_change_ml": "dosing"},
	"od_readings_filtered": {"normalized_od_reading": noData},
	"od_readings_fused":    {"od_reading": noData},
	"alt_media_fractions":  {"alt_media_fraction": noData},
	"liquid_volumes":       {"liquid_volume": noData},
	"stirring_rates":       {"measured_rpm": noData},
}

// sqlName is what Pioreactor keeps of a table or column name.
var sqlName = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

// columnSeries resolves {data_source}/{column}; on failure it has answered
// 400, as Pioreactor does for a table or column its database lacks.
func columnSeries(c *gin.Context) (string, bool) {
	src, col := c.Param("series"), c.Param("column")
	if !sqlName.MatchString(src) || !sqlName.MatchString(col) {
		abort(c, http.StatusBadRequest, "bad data source", quoteCut(src)+"/"+quoteCut(col)+" is not a table and a column name",
			"use names of letters, digits and _, e.g. /time_series/growth_rates/rate")
		return "", false
	}
	kind, ok := seriesColumns[src][col]
	if !ok {
		abort(c, http.StatusBadRequest, "no such data source", "pio keeps no column "+quoteCut(col)+" of "+quoteCut(src),
			"use od_readings/od_reading, raw_od_readings/od_reading, growth_rates/rate, temperature_readings/temperature_c or dosing_events/volume_change_ml")
		return "", false
	}
	return kind, true
}

// columnTimeSeries answers Pioreactor's generic GET
// /api/experiments/{exp}/time_series/{data_source}/{column}.
func (s *Server) columnTimeSeries(c *gin.Context) {
	if kind, ok := columnSeries(c); ok {
		s.answerSeries(c, kind, "")
	}
}

// seriesUnit validates the unit of a per-unit time series; $broadcast means
// every unit. On failure it has answered 400. The unit need not be in the
// inventory: a removed unit's readings are still served.
func seriesUnit(c *gin.Context) (string, bool) {
	name := c.Param("unit")
	if name == fsm.Broadcast {
		return name, true
	}
	return unitParam(c, name)
}

// unitTimeSeries answers GET /api/workers/{unit}/experiments/{exp}/time_series/{series}:
// the named series of one unit.
func (s *Server) unitTimeSeries(c *gin.Context) {
	kind, ok := namedSeries(c.Param("series"))
	if !ok {
		abort(c, http.StatusNotFound, "no such time series", c.Param("series"), "use od_readings, raw_od_readings, growth_rates, temperature_readings or dosing_events")
		return
	}
	if unit, ok := seriesUnit(c); ok {
		s.answerSeries(c, kind, unit)
	}
}

// unitColumnTimeSeries answers GET
// /api/workers/{unit}/experiments/{exp}/time_series/{data_source}/{column}.
func (s *Server) unitColumnTimeSeries(c *gin.Context) {
	unit, ok := seriesUnit(c)
	if !ok {
		return
	}
	if kind, ok := columnSeries(c); ok {
		s.answerSeries(c, kind, unit)
	}
}

// mediaRate is a unit's media added by its dosing automation over the last
// three hours, in ml an hour, as Pioreactor's media_rates answers it.
type mediaRate struct {
	AltMediaRate float64 `json:"altMediaRate"`
	MediaRate    float64 `json:"mediaRate"`
}

// mediaRateWindow is how far back GET media_rates looks, as Pioreactor.
const mediaRateWindow = 3 * time.Hour

// mediaRates answers GET /api/experiments/{exp}/media_rates: by unit and
// "all", the ml an hour of media its dosing automation added in the last
// three hours. pio's automations dose media only: altMediaRate is 0.
func (s *Server) mediaRates(c *gin.Context) {
	e, ok := s.lookupExperiment(c)
	if !ok {
		return
	}
	by, err := s.fsm.Readings(e.Experiment, "dosing", time.Now().Add(-mediaRateWindow))
	if err != nil {
		fail(c, err)
		return
	}
	out := map[string]mediaRate{}
	var all mediaRate
	for unit, rs := range by {
		var ml float64
		for _, r := range rs {
			ml += r.Value
		}
		r := mediaRate{MediaRate: ml / mediaRateWindow.Hours()}
		out[unit] = r
		all.MediaRate += r.MediaRate
	}
	out["all"] = all
	c.JSON(http.StatusOK, out)
}
