package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/pioreactor/pio/gpio"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/jobs"
	"github.com/pioreactor/pio/membership"
	"github.com/pioreactor/pio/rpc"
)

// This file serves Pioreactor's descriptor routes: what its UI reads to draw
// job controls, settings, automation forms and charts. Jobs and automations
// come from the jobs package's catalog (the leader's: the default model's
// bounds; a worker's: its model's bounds and what its HAT can run); charts
// from the time series this API serves.

// descriptorAskTimeout bounds a descriptor request the leader sends a worker
// (Pioreactor waits 10 s).
const descriptorAskTimeout = 10 * time.Second

// SettingsCollection is Pioreactor's SettingsCollectionDescriptor: a group
// of a unit's values that belong to no job (its bioreactor volumes, LED
// and PWM levels), published on MQTT under pioreactor/{unit}/{exp}/{key}.
type SettingsCollection struct {
	Key               string                   `json:"key"`
	DisplayName       string                   `json:"display_name"`
	Display           bool                     `json:"display"`
	PublishedSettings []jobs.SettingDescriptor `json:"published_settings"`
	Source            *string                  `json:"source"`
	Description       *string                  `json:"description"`
	Subtext           *string                  `json:"subtext"`
}

// settingsCollections are this node's settings collections: none, since pio
// keeps no value of a unit outside its jobs (no bioreactor volumes, and the
// LEDs and PWMs are driven by the jobs).
var settingsCollections = []SettingsCollection{}

// ChartDescriptor is Pioreactor's ChartDescriptor: a chart of its UI, the
// time series it fetches (GET /api/experiments/{exp}/time_series/{data_source})
// and the MQTT topic (under pioreactor/+/{exp}/) whose payload_key it adds live.
type ChartDescriptor struct {
	ChartKey         string    `json:"chart_key"`
	DataSource       string    `json:"data_source"`
	Title            string    `json:"title"`
	Source           string    `json:"source"`
	YAxisLabel       string    `json:"y_axis_label"`
	FixedDecimals    int       `json:"fixed_decimals"`
	DownSample       bool      `json:"down_sample"`
	MQTTTopic        any       `json:"mqtt_topic"`
	Lookback         any       `json:"lookback"`
	DataSourceColumn *string   `json:"data_source_column"`
	PayloadKey       *string   `json:"payload_key"`
	YTransformation  string    `json:"y_transformation"`
	YAxisDomain      []float64 `json:"y_axis_domain"`
	Interpolation    string    `json:"interpolation"`
}

func chartText(s string) *string { return &s }

// charts are the charts of the readings pio keeps (see timeSeries), keyed
// as Pioreactor's UI keys the same charts, each fed live by the topic the
// MQTT broker publishes its readings on. Lookback is in hours.
var charts = []ChartDescriptor{
	{ChartKey: "implied_growth_rate", DataSource: "growth_rates", Title: "Growth rate", Source: "app",
		YAxisLabel: "Growth rate, h⁻¹", FixedDecimals: 3, DownSample: true, MQTTTopic: "growth_rate_calculating/growth_rate",
		Lookback: 12, PayloadKey: chartText("growth_rate"), YTransformation: "(y) => y", Interpolation: "stepAfter"},
	{ChartKey: "optical_density", DataSource: "od_readings", Title: "Optical density", Source: "app",
		YAxisLabel: "OD (signal / reference)", FixedDecimals: 3, DownSample: true, MQTTTopic: []string{"od_reading/od" + gpio.ODSignalChannel},
		Lookback: 12, PayloadKey: chartText("od"), YTransformation: "(y) => y", Interpolation: "stepAfter"},
	{ChartKey: "temperature", DataSource: "temperature_readings", Title: "Temperature", Source: "app",
		YAxisLabel: "Temperature, ℃", FixedDecimals: 1, DownSample: false, MQTTTopic: "temperature_automation/temperature",
		Lookback: 100000, PayloadKey: chartText("temperature"), YTransformation: "(y) => y", YAxisDomain: []float64{20, 45}, Interpolation: "stepAfter"},
}

// automationType reads the {type} of an automation route; on a bad one it
// has answered 400, as Pioreactor does.
func automationType(c *gin.Context) (string, bool) {
	t := c.Param("type")
	if !slices.Contains(jobs.AutomationFamilies, t) {
		abort(c, http.StatusBadRequest, "Not a valid automation type", fmt.Sprintf("no automation type %q", clipped(t, 64)),
			"choose one of 'temperature', 'dosing', 'led'")
		return "", false
	}
	return t, true
}

func clipped(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// settingsDescriptors answers GET /api/settings/descriptors and
// /unit_api/settings/descriptors: the settings collections (none in pio).
func (s *Server) settingsDescriptors(c *gin.Context) {
	c.JSON(http.StatusOK, settingsCollections)
}

// automationDescriptors answers GET /api/automations/descriptors/{type}:
// the automations of a family, with the default model's bounds.
func (s *Server) automationDescriptors(c *gin.Context) {
	t, ok := automationType(c)
	if !ok {
		return
	}
	out, err := jobs.Automations(t, jobs.DefaultLimits())
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

// unitAutomationDescriptors answers GET /unit_api/automations/descriptors/{type}:
// the automations of a family this unit's HAT can run, with its bounds.
func (s *Server) unitAutomationDescriptors(c *gin.Context) {
	t, ok := automationType(c)
	if !ok || s.noJobs(c) {
		return
	}
	out, err := s.cfg.Jobs.Automations(t)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

// chartDescriptors answers GET /api/charts/descriptors.
func (s *Server) chartDescriptors(c *gin.Context) {
	c.JSON(http.StatusOK, charts)
}

// workerJobDescriptors answers GET /api/workers/{unit}/jobs/descriptors: the
// worker's own answer to /unit_api/jobs/descriptors.
func (s *Server) workerJobDescriptors(c *gin.Context) {
	s.askWorker(c, "job descriptors", "/unit_api/jobs/descriptors")
}

// workerSettingsDescriptors answers GET /api/workers/{unit}/settings/descriptors.
func (s *Server) workerSettingsDescriptors(c *gin.Context) {
	s.askWorker(c, "settings descriptors", "/unit_api/settings/descriptors")
}

// workerAutomationDescriptors answers GET
// /api/workers/{unit}/automations/descriptors/{type}.
func (s *Server) workerAutomationDescriptors(c *gin.Context) {
	t, ok := automationType(c)
	if !ok {
		return
	}
	s.askWorker(c, t+" automation descriptors", "/unit_api/automations/descriptors/"+t)
}

// askWorker answers with a worker's answer to GET path, as Pioreactor's
// worker-scoped descriptor routes do: 400 for $broadcast or a unit that is
// not a worker of the inventory, the worker's own error, or 502 when the
// worker cannot be reached.
func (s *Server) askWorker(c *gin.Context, what, path string) {
	name := c.Param("unit")
	if name == fsm.Broadcast {
		abort(c, http.StatusBadRequest, "cannot fetch "+what+" with $broadcast; choose a specific Pioreactor",
			what+" are asked of one unit", "name a worker in the path (GET /api/workers lists them)")
		return
	}
	u, ok := s.lookupUnit(c, name)
	if !ok {
		return
	}
	if !u.Worker {
		abort(c, http.StatusBadRequest, "unknown Pioreactor worker: "+u.Name, u.Name+" is a member of the cluster but not a worker (--worker=false)",
			"choose a worker from GET /api/workers")
		return
	}
	failed := "fetching " + what + " failed on " + u.Name
	if h := s.mem.States()[u.NodeID].Health; h == membership.HealthDead || h == membership.HealthLeft {
		abort(c, http.StatusBadGateway, failed, u.Name+" is "+h+" (gossip)", "check that the worker is powered and online, then retry")
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), descriptorAskTimeout)
	defer cancel()
	var out json.RawMessage
	err := s.rpc.Do(ctx, u.RaftAddr, http.MethodGet, path, nil, nil, &out)
	var re *rpc.Error
	switch {
	case err == nil && len(out) > 0:
		c.Data(http.StatusOK, "application/json; charset=utf-8", out)
	case errors.As(err, &re) && re.Status >= 400:
		abort(c, re.Status, re.Message, strings.TrimSpace(re.Cause+" (on "+u.Name+")"), re.Remediation)
	case err == nil:
		abort(c, http.StatusBadGateway, failed, u.Name+" answered nothing", "check the worker's log (journalctl -u pio) and retry")
	default:
		abort(c, http.StatusBadGateway, failed, err.Error(), "check that the worker is online, then retry")
	}
}
