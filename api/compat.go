package api

import (
	"bufio"
	"fmt"
	"github.com/pioreactor/pio/gpio"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/pioreactor/pio/discovery"
	"github.com/pioreactor/pio/fsm"
)

// Model is a Pioreactor hardware model as GET /api/models lists it: the
// name and version that identify it, and its vessel's dimensions and heating limits.
type Model struct {
	ModelName               string  `json:"model_name"`
	ModelVersion            string  `json:"model_version"`
	DisplayName             string  `json:"display_name"`
	ReactorCapacityML       float64 `json:"reactor_capacity_ml"`
	ReactorMaxFillVolumeML  float64 `json:"reactor_max_fill_volume_ml"`
	ReactorDiameterMM       float64 `json:"reactor_diameter_mm"`
	MaxTempToReduceHeating  float64 `json:"max_temp_to_reduce_heating"`
	MaxTempToDisableHeating float64 `json:"max_temp_to_disable_heating"`
	MaxTempToShutdown       float64 `json:"max_temp_to_shutdown"`
	IsLegacy                bool    `json:"is_legacy"`
	IsContrib               bool    `json:"is_contrib"`
}

// model makes a built-in model of the given size: 20 ml vessels hold 18 ml,
// 40 ml ones 36 ml, all 27 mm wide; version 1.0 of the 20 ml heats less.
func model(name, version, display string, capacity float64, legacy bool) Model {
	m := Model{ModelName: name, ModelVersion: version, DisplayName: display, ReactorCapacityML: capacity,
		ReactorMaxFillVolumeML: capacity * 0.9, ReactorDiameterMM: 27, MaxTempToReduceHeating: 78,
		MaxTempToDisableHeating: 80, MaxTempToShutdown: 85, IsLegacy: legacy}
	if name == "pioreactor_20ml" && version == "1.0" {
		m.MaxTempToReduceHeating, m.MaxTempToDisableHeating, m.MaxTempToShutdown = 63, 65, 66
	}
	return m
}

// Models are the hardware models Pioreactor knows (its built-in ones), in its order.
var Models = []Model{
	model("pioreactor_40ml", "1.5", "Pioreactor 40ml, v1.5", 40, false),
	model("pioreactor_40ml", "1.0", "Pioreactor 40ml, v1.0", 40, true),
	model("pioreactor_20ml", "1.1", "Pioreactor 20ml, v1.1", 20, true),
	model("pioreactor_20ml", "1.0", "Pioreactor 20ml, v1.0", 20, true),
	model("pioreactor_20ml", "1.5", "Pioreactor 20ml, v1.5", 20, false),
	model("pioreactor_40ml_XR", "1.5", "Pioreactor 40ml XR, v1.5", 40, false),
	model("pioreactor_20ml_XR", "1.5", "Pioreactor 20ml XR, v1.5", 20, false),
}

// findModel returns the model of that name and version, if Pioreactor knows it.
func findModel(name, version string) (Model, bool) {
	for _, m := range Models {
		if m.ModelName == name && m.ModelVersion == version {
			return m, true
		}
	}
	return Model{}, false
}

// getModels answers GET /api/models: {"models": [...]}.
func (s *Server) getModels(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"models": Models})
}

// discoverWorkers answers GET /api/workers/discover as Pioreactor does: the
// nodes found on the network (mDNS, _pio-worker._tcp) that are not in this
// cluster, [{"pioreactor_unit", ...}], plus what they advertise (address,
// version, model, fresh). Only standalone nodes are listed: a member of
// another cluster cannot be added. A browse that fails answers [] (and logs),
// as Pioreactor's does when avahi-browse finds nothing.
func (s *Server) discoverWorkers(c *gin.Context) {
	if !s.readable(c) {
		return
	}
	out := []discovery.Node{}
	if s.cfg.Discover == nil {
		c.JSON(http.StatusOK, out)
		return
	}
	found, err := s.cfg.Discover(c.Request.Context())
	if now := time.Now().Unix(); err != nil && s.discoverWarned.Swap(now) < now-60 { // once a minute at most
		s.log.Warn("discover: the mDNS browse failed", "error", err.Error(),
			"remediation", "check that this node has a network interface with multicast; add workers by name or address meanwhile")
	}
	for _, n := range found {
		if _, member := s.fsm.UnitByName(n.Unit); member || !n.Standalone {
			continue
		}
		out = append(out, n)
	}
	c.JSON(http.StatusOK, out)
}

// setupWorkerBody is the body of POST /api/workers/setup, Pioreactor's fields:
// model and version are the model's name and version.
type setupWorkerBody struct {
	Name    *string `json:"name"`
	Version *string `json:"version"`
	Model   *string `json:"model"`
	IPv4    string  `json:"ipv4_address"`
}

// setupWorker answers POST /api/workers/setup as PUT /api/workers does (the
// leader invites the named node into the cluster), with Pioreactor's answer.
func (s *Server) setupWorker(c *gin.Context) {
	var b setupWorkerBody
	if !decodeBody(c, &b) {
		return
	}
	if b.Name == nil || b.Version == nil || b.Model == nil {
		abort(c, http.StatusBadRequest, "missing name, model or version", `the body needs "name", "model" and "version", as Pioreactor's`, `send {"name": "worker2", "model": "pioreactor_40ml", "version": "1.5"}`)
		return
	}
	ip := strings.TrimSpace(b.IPv4)
	if ip != "" && !validIPv4Port(ip) {
		abort(c, http.StatusBadRequest, "invalid ipv4_address", fmt.Sprintf("%s is not an IPv4 address", quoteCut(ip)), "send the worker's IPv4 address, e.g. 192.168.1.20 (or 192.168.1.20:8081 if it serves on another port), or leave ipv4_address out")
		return
	}
	if u, ok := s.addWorkerNamed(c, *b.Name, *b.Model, *b.Version, ip); ok {
		c.JSON(http.StatusOK, gin.H{"msg": fmt.Sprintf("Worker %s added successfully.", u.Name)})
	}
}

// validIPv4Port reports whether s is an IPv4 address, with or without a port
// (pio's addition: a node may serve on another port than 8080).
func validIPv4Port(s string) bool {
	host := s
	if h, port, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return false
		}
		host = h
	}
	a := net.ParseIP(host)
	return a != nil && a.To4() != nil && strings.Count(host, ":") == 0
}

// quoteCut quotes s for an error message, cut to its first 64 bytes.
func quoteCut(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strconv.Quote(s)
}

// workerModelBody is the body of PUT /api/workers/{unit}/model.
type workerModelBody struct {
	ModelName    *string `json:"model_name"`
	ModelVersion *string `json:"model_version"`
}

// inventoryWorker finds the worker named in the path; on failure it has answered 404.
func (s *Server) inventoryWorker(c *gin.Context) (fsm.Unit, bool) {
	u, ok := s.fsm.UnitByName(c.Param("unit"))
	if !ok || !u.Worker {
		abort(c, http.StatusNotFound, "worker not found", fmt.Sprintf("no worker named %s", quoteCut(c.Param("unit"))), "list workers with GET /api/workers")
		return fsm.Unit{}, false
	}
	return u, true
}

// putWorkerModel answers PUT /api/workers/{unit}/model {"model_name",
// "model_version"}: one of GET /api/models, stored in the unit's registration.
func (s *Server) putWorkerModel(c *gin.Context) {
	var b workerModelBody
	if !decodeBody(c, &b) {
		return
	}
	if b.ModelName == nil || b.ModelVersion == nil {
		abort(c, http.StatusBadRequest, "missing model", `the body needs "model_name" and "model_version"`, `send {"model_name": "pioreactor_40ml", "model_version": "1.5"} (see GET /api/models)`)
		return
	}
	if _, ok := findModel(*b.ModelName, *b.ModelVersion); !ok {
		abort(c, http.StatusBadRequest, "unknown model", fmt.Sprintf("no model %s version %s", quoteCut(*b.ModelName), quoteCut(*b.ModelVersion)),
			"use a model_name and model_version listed by GET /api/models")
		return
	}
	if !s.readable(c) {
		return
	}
	u, ok := s.fsm.UnitByName(c.Param("unit"))
	if !ok || !u.Worker {
		// 400 as Pioreactor's registered_worker_or_abort (GET answers 404).
		abort(c, http.StatusBadRequest, "unknown worker", fmt.Sprintf("no worker named %s", quoteCut(c.Param("unit"))), "list workers with GET /api/workers")
		return
	}
	if !s.apply(c, fsm.CmdRegisterUnit, fsm.RegisterUnit{NodeID: u.NodeID, Name: u.Name, Worker: u.Worker, RaftAddr: u.RaftAddr,
		HTTPAddr: u.HTTPAddr, GossipAddr: u.GossipAddr, ModelName: *b.ModelName, ModelVersion: *b.ModelVersion}) {
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "success"})
}

// getWorkerModel answers GET /api/workers/{unit}/model: the unit and its
// model's fields; 404 when the worker is unknown or has no model set.
func (s *Server) getWorkerModel(c *gin.Context) {
	if !s.readable(c) {
		return
	}
	u, ok := s.inventoryWorker(c)
	if !ok {
		return
	}
	m, known := findModel(u.ModelName, u.ModelVersion)
	if !known {
		abort(c, http.StatusNotFound, "model not set", fmt.Sprintf("%s has no known model (model_name %q, model_version %q)", u.Name, u.ModelName, u.ModelVersion),
			"set it with PUT /api/workers/"+u.Name+"/model (see GET /api/models)")
		return
	}
	c.JSON(http.StatusOK, struct {
		Unit string `json:"pioreactor_unit"`
		Model
	}{u.Name, m})
}

// sharedConfig is the cluster's part of a unit's config.ini, section by
// section: who leads, and the unit's MQTT broker (the unit itself).
func (s *Server) sharedConfig(broker string) (map[string]map[string]string, bool) {
	id, _ := s.node.Leader()
	leader, ok := s.fsm.UnitByID(id)
	if id == "" || !ok {
		return nil, false
	}
	host, _, _ := net.SplitHostPort(leader.HTTPAddr)
	return map[string]map[string]string{
		"cluster.topology": {"leader_hostname": leader.Name, "leader_address": host},
		"mqtt":             {"broker_address": broker},
		// What pio's HAT wiring and UI really are, in the sections Pioreactor's
		// UI reads: the photodiodes, LEDs and PWM channels, and the charts and
		// cards of its Overview that pio has data for.
		"od_config.photodiode_channel": {gpio.ODReferenceChannel: "REF", gpio.ODSignalChannel: "90"},
		"leds":                         {gpio.LEDIR: "IR", gpio.LEDWhite: "white_light"},
		"PWM": {strconv.Itoa(gpio.PWMStirring): "stirring", strconv.Itoa(gpio.PWMMedia): "media", strconv.Itoa(gpio.PWMAltMedia): "alt_media",
			strconv.Itoa(gpio.PWMWaste): "waste", strconv.Itoa(gpio.PWMHeater): "heating"},
		"ui.overview.charts":   {"optical_density": "1", "implied_growth_rate": "1", "temperature": "1"},
		"ui.overview.cards":    {"dosings": "1", "event_logs": "1", "profiles": "1"},
		"ui.overview.settings": {"time_display_mode": "clock_time"},
		"logging":              {"ui_log_level": "INFO"}, // the UI's log tables ask for INFO and above
	}, true
}

// renderINI writes sections as an INI file, sections and keys in order.
func renderINI(sections map[string]map[string]string) string {
	var sb strings.Builder
	names := make([]string, 0, len(sections))
	for n := range sections {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		if i > 0 {
			sb.WriteString("\n")
		}
		fmt.Fprintf(&sb, "[%s]\n", n)
		keys := make([]string, 0, len(sections[n]))
		for k := range sections[n] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&sb, "%s=%s\n", k, sections[n][k])
		}
	}
	return sb.String()
}

// noLeaderYet answers 503: the cluster has no leader this node knows of.
func noLeaderYet(c *gin.Context) {
	abort(c, http.StatusServiceUnavailable, "no leader", "this node knows of no leader in its inventory yet", "retry in a few seconds; `pio status` shows the cluster")
}

// getSharedConfig answers GET /api/config/shared on the node asked: the text
// of a config.ini made from the cluster (text/plain, as Pioreactor answers).
func (s *Server) getSharedConfig(c *gin.Context) {
	host, _, _ := net.SplitHostPort(s.cfg.HTTPAddr)
	sections, ok := s.sharedConfig(host)
	if !ok {
		noLeaderYet(c)
		return
	}
	c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte(renderINI(sections)))
}

// getUnitConfig answers GET /api/config/units/{unit} ($broadcast: every
// unit): {"configs": {unit: {section: {key: value}}}, "errors": {}}.
func (s *Server) getUnitConfig(c *gin.Context) {
	if !s.readable(c) {
		return
	}
	var units []fsm.Unit
	if name := c.Param("unit"); name == fsm.Broadcast {
		units = s.fsm.Units()
	} else if u, ok := s.lookupUnit(c, name); ok {
		units = []fsm.Unit{u}
	} else {
		return
	}
	configs := map[string]map[string]map[string]string{}
	for _, u := range units {
		host, _, _ := net.SplitHostPort(u.HTTPAddr)
		sections, ok := s.sharedConfig(host)
		if !ok {
			noLeaderYet(c)
			return
		}
		configs[u.Name] = sections
	}
	c.JSON(http.StatusOK, gin.H{"configs": configs, "errors": gin.H{}})
}

// localAccessPoint answers GET /api/local_access_point: pio never makes a
// Wi-Fi access point of a node.
func (s *Server) localAccessPoint(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"active": false})
}

// unitVersions answers GET /unit_api/versions/app: this node's software version.
func (s *Server) unitVersions(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"version": s.cfg.Version})
}

// unitDiskSpace answers GET /unit_api/system/disk_space: the free and total
// bytes of the file system of this node's data directory.
func (s *Server) unitDiskSpace(c *gin.Context) {
	dir := s.cfg.DataDir
	if dir == "" {
		dir = "/"
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		abort(c, http.StatusInternalServerError, "disk space unknown", err.Error(), "check that the data directory "+dir+" exists")
		return
	}
	bs := uint64(st.Bsize) //nolint:unconvert // int64 on Linux, uint32 elsewhere
	c.JSON(http.StatusOK, gin.H{"available_bytes": uint64(st.Bavail) * bs, "total_bytes": uint64(st.Blocks) * bs})
}

// readMeminfo returns MemAvailable and MemTotal, in bytes, from a /proc/meminfo file.
func readMeminfo(path string) (available, total uint64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	var haveA, haveT bool
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		n, err := strconv.ParseUint(fields[1], 10, 64)
		if err != nil {
			continue
		}
		if len(fields) > 2 && fields[2] == "kB" {
			n *= 1024
		}
		switch fields[0] {
		case "MemAvailable:":
			available, haveA = n, true
		case "MemTotal:":
			total, haveT = n, true
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if !haveA || !haveT {
		return 0, 0, fmt.Errorf("%s has no MemAvailable or MemTotal", path)
	}
	return available, total, nil
}

// unitMemory answers GET /unit_api/system/memory: available and total bytes of memory.
func (s *Server) unitMemory(c *gin.Context) {
	a, t, err := readMeminfo("/proc/meminfo")
	if err != nil {
		abort(c, http.StatusInternalServerError, "memory unknown", err.Error(), "this route reads /proc/meminfo: it needs Linux")
		return
	}
	c.JSON(http.StatusOK, gin.H{"available_bytes": a, "total_bytes": t})
}

// hostIPv4s lists the IPv4 addresses of this host's interfaces, those that
// are not loopback first.
func hostIPv4s() []string {
	var out, loop []string
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.To4() == nil {
			continue
		}
		if ipn.IP.IsLoopback() {
			loop = append(loop, ipn.IP.String())
		} else {
			out = append(out, ipn.IP.String())
		}
	}
	return append(out, loop...)
}

// unitIPv4 answers GET /unit_api/system/ipv4: {"ipv4_address"} as Pioreactor,
// the address this node serves its API on (else the host's first), and
// ipv4_addresses, all of the host's.
func (s *Server) unitIPv4(c *gin.Context) {
	all := hostIPv4s()
	ip := ""
	if host, _, err := net.SplitHostPort(s.cfg.HTTPAddr); err == nil {
		if a := net.ParseIP(host); a != nil && a.To4() != nil && !a.IsUnspecified() {
			ip = a.String()
		}
	}
	if ip == "" && len(all) > 0 {
		ip = all[0]
	}
	if all == nil {
		all = []string{}
	}
	c.JSON(http.StatusOK, gin.H{"ipv4_address": ip, "ipv4_addresses": all})
}

// unitLongRunningJobs answers GET /unit_api/long_running_jobs/running:
// Pioreactor's system jobs (monitor, its MQTT-to-database bridge) are part of
// pio serve itself, so the list is empty.
func (s *Server) unitLongRunningJobs(c *gin.Context) {
	c.JSON(http.StatusOK, []any{})
}
