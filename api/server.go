package api

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/pioreactor/pio/cluster"
	"github.com/pioreactor/pio/discovery"
	"github.com/pioreactor/pio/export"
	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/gpio"
	"github.com/pioreactor/pio/jobs"
	"github.com/pioreactor/pio/membership"
	"github.com/pioreactor/pio/rpc"
	"github.com/pioreactor/pio/trust"
	"github.com/pioreactor/pio/web"
)

// Membership is what the API needs of the membership manager.
type Membership interface {
	// Join makes this node join the cluster of the node at addr with a join token.
	Join(ctx context.Context, addr, token string, force bool) (membership.JoinResult, error)
	Leave(ctx context.Context) error
	RemoveMember(ctx context.Context, nodeID string) error
	// States is this node's gossip view of every member, by node ID.
	States() map[string]membership.MemberState
	// OnChange calls fn (which must not block) when gossip reports a change, until stop.
	OnChange(fn func()) (stop func())
	// Problems says, on the leader, why members cannot be reconciled, by node ID.
	Problems() map[string]string
	// RemovalBreaksQuorum explains why removing a node would leave no quorum, or returns "".
	RemovalBreaksQuorum(nodeID string) string
	// ConfirmRemoved asks the cluster whether this node was removed and, if so, goes standalone.
	ConfirmRemoved(ctx context.Context)
	// Invite makes a one-time join token for the node called name.
	Invite(name string) (string, error)
	// AcceptInvitation makes a fresh node join the inviting node's cluster.
	AcceptInvitation(ctx context.Context, addr, token string) (membership.JoinResult, error)
	// RotateGossipKey replaces the gossip key on every member (on the leader).
	RotateGossipKey(ctx context.Context, progress func(step string)) (membership.RotationResult, error)
	// EnableSecurity moves a cluster without secrets to secrets, TLS and keys (on the leader).
	EnableSecurity(ctx context.Context, progress func(step string)) (membership.SecureResult, error)
}

// Raft is what the API needs of this node's Raft peer (cluster.Node).
type Raft interface {
	// FSM is the state machine the peer applies to; handlers read it.
	FSM() *fsm.FSM
	// Apply proposes a command on the leader and returns its outcome once applied.
	Apply(cmd fsm.Command) (fsm.Result, error)
	// IsLeader, Leader and Status describe the peer's view of the leadership.
	IsLeader() bool
	Leader() (id, addr string)
	Status() cluster.Status
	// Servers is the Raft configuration; Addr this peer's cluster address.
	Servers() ([]cluster.Server, error)
	Addr() string
	// VerifyLeader, Barrier and WaitApplied make a read linearizable (readable).
	VerifyLeader() error
	Barrier(timeout time.Duration) error
	WaitApplied(ctx context.Context, index uint64) error
	// OnLeaderChange calls fn when the leader changes, until stop.
	OnLeaderChange(fn func(leaderID string)) (stop func())
}

var _ Raft = (*cluster.Node)(nil)

// Config configures a Server.
type Config struct {
	// Name and NodeID identify this node; HTTPAddr is the address others reach its API at.
	Name     string
	NodeID   string
	HTTPAddr string
	// Version is the software version reported by /unit_api/health.
	Version string
	// Trust holds this node's secrets (the API token among them).
	Trust *trust.Store
	// RPC makes the node-to-node calls: forwarding to the leader, dispatching to workers.
	RPC *rpc.Client
	// Auth is "on" (writes need the API token; the default) or "off" (an open API, as before pio had secrets).
	Auth string
	// ReadAuth makes reads need the API token too.
	ReadAuth bool
	// Hardware is this node's HAT (or its simulation); nil when it has none.
	Hardware gpio.Backend
	// Jobs runs this node's activities; nil on a node that runs none.
	Jobs *jobs.Runtime
	// Reboot reboots this node (the OS on a Pi, the runtime in simulation); nil if it cannot.
	Reboot func() error
	// Shutdown powers this node off (the OS on a Pi; in simulation the runtime
	// stops); Repair makes its data dir private again. nil if it cannot.
	Shutdown func() error
	Repair   func() error
	// HoldTimeout is how long a request waits for a leader before 503.
	HoldTimeout time.Duration
	// MaxEventStreams is how many GET /api/events streams this node serves at
	// once; past it the stream is refused with 503. 0 means DefaultMaxEventStreams.
	MaxEventStreams int
	// Logger receives request errors; nil means slog.Default().
	Logger *slog.Logger
	// DataDir is this node's data directory; GET /unit_api/system/disk_space
	// measures its file system ("" means /).
	DataDir string
	// ExportDir is where this node writes the exports of experiment data and
	// serves them from (GET /exports/{file}); "" means it makes none.
	ExportDir string
	// UI serves another browser UI at / (such as Pioreactor's own, see
	// web.Dir); pio's own UI then moves to /pio/. nil serves pio's at /.
	UI http.Handler
	// Discover browses the network for pio nodes (mDNS) for GET
	// /api/workers/discover; nil: none are found.
	Discover func(ctx context.Context) ([]discovery.Node, error)
}

// DefaultMaxEventStreams is how many GET /api/events streams a node serves at once by default.
const DefaultMaxEventStreams = 64

// DefaultConfig returns the API defaults.
func DefaultConfig() Config {
	return Config{HoldTimeout: 5 * time.Second, Auth: "on", MaxEventStreams: DefaultMaxEventStreams}
}

// Server is a node's HTTP API. net/http runs its handlers; it owns one
// goroutine, the broadcaster of GET /api/events, stopped by Close.
type Server struct {
	cfg    Config
	node   Raft
	fsm    *fsm.FSM
	mem    Membership
	rpc    *rpc.Client
	engine *gin.Engine
	// refused logs requests refused for a missing or wrong API token, rate-limited.
	refused *trust.Refusals
	log     *slog.Logger
	tasks   *taskRunner
	// bcast fans server-sent events out to the streams of GET /api/events.
	bcast *broadcaster
	// streamsOnce registers the end of the streams with the HTTP server's shutdown.
	streamsOnce sync.Once
	// barrierTerm is the last term in which this leader committed a barrier (see readable).
	barrierTerm atomic.Uint64
	// exportMu guards exportTask, the task ID of the export this node runs ("" when none).
	exportMu   sync.Mutex
	exportTask string
	// discoverWarned is when a failed browse was last logged (unix seconds).
	discoverWarned atomic.Int64
}

// New builds the API of a node.
func New(cfg Config, node Raft, mem Membership) *Server {
	if cfg.HoldTimeout <= 0 {
		cfg.HoldTimeout = 5 * time.Second
	}
	if cfg.MaxEventStreams <= 0 {
		cfg.MaxEventStreams = DefaultMaxEventStreams
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	gin.SetMode(gin.ReleaseMode)
	if cfg.Auth == "" {
		cfg.Auth = "on"
	}
	s := &Server{cfg: cfg, node: node, fsm: node.FSM(), mem: mem, rpc: cfg.RPC, log: cfg.Logger,
		tasks: newTaskRunner(cfg.NodeID), refused: trust.NewRefusals(cfg.Logger, time.Minute)}
	if cfg.Auth == "off" {
		s.log.Warn("api.auth is off: anyone who reaches this node's HTTP port can change the cluster",
			"remediation", "remove `api.auth: off` from the config (or PIO_API_AUTH) to require the API token for writes")
	}
	e := gin.New()
	e.Use(gin.Recovery(), s.authorize)
	e.HandleMethodNotAllowed = true
	ui, other := web.Handler(), cfg.UI
	if other != nil {
		ui = http.StripPrefix("/pio", ui)
	}
	e.NoRoute(func(c *gin.Context) {
		if p := c.Request.URL.Path; (c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead) && !strings.HasPrefix(p, "/api/") && !strings.HasPrefix(p, "/unit_api/") && !strings.HasPrefix(p, "/exports/") {
			switch {
			case other == nil:
				ui.ServeHTTP(c.Writer, c.Request)
			case p == "/pio":
				http.Redirect(c.Writer, c.Request, "/pio/", http.StatusMovedPermanently)
			case strings.HasPrefix(p, "/pio/"):
				ui.ServeHTTP(c.Writer, c.Request)
			case !strings.HasPrefix(p, "/static/") && !s.signedIn(c.Request):
				// The other UI sends no token: sign in on pio's page first, which sets the cookie.
				c.Header("Cache-Control", "no-store")
				http.Redirect(c.Writer, c.Request, "/pio/?then="+url.QueryEscape(c.Request.URL.RequestURI()), http.StatusSeeOther)
			default:
				other.ServeHTTP(c.Writer, c.Request)
			}
			return
		}
		abort(c, http.StatusNotFound, "no such route", c.Request.Method+" "+c.Request.URL.Path, "see the routes in the README")
	})
	e.NoMethod(func(c *gin.Context) {
		abort(c, http.StatusMethodNotAllowed, "method not allowed", c.Request.Method+" "+c.Request.URL.Path, "see the routes in the README")
	})

	// Handled by this node itself, never forwarded.
	e.GET("/api/events", s.events)
	e.POST("/api/cluster/join", s.joinCluster)
	e.POST("/api/cluster/leave", s.leaveCluster)
	e.GET("/unit_api/health", s.health)
	e.POST("/unit_api/auth_check", s.authCheck)
	e.POST("/unit_api/sign_out", s.signOut)
	e.GET("/metrics", s.metrics)
	e.GET("/unit_api/hardware", s.hardware)
	e.POST("/unit_api/hardware/check", s.hardwareCheck)
	e.PATCH("/unit_api/hardware/check", s.hardwareCheck)
	e.GET("/unit_api/state_hash", s.stateHash)
	e.POST("/unit_api/blink", s.unitBlink)
	e.POST("/unit_api/system/reboot", s.unitReboot)
	e.PATCH("/unit_api/system/reboot", s.unitReboot)
	e.POST("/unit_api/removed", s.unitRemoved)
	e.POST("/unit_api/invitation", s.invitation)
	e.GET("/unit_api/task_results/:id", s.taskResult)
	e.GET("/unit_api/jobs/running", s.unitRunning)
	e.GET("/unit_api/jobs/running/:job", s.unitRunningJob)
	e.GET("/unit_api/jobs/running/experiments/:exp", s.unitRunningInExperiment)
	e.GET("/unit_api/jobs", s.unitJobs)
	e.GET("/unit_api/jobs/settings/job_name/:job", s.unitJobSettings)
	e.PATCH("/unit_api/jobs/settings/job_name/:job", s.unitUpdate)
	e.GET("/unit_api/jobs/settings/job_name/:job/setting/:setting", s.unitJobSetting)
	e.POST("/unit_api/jobs/stop", s.unitStopJobs)
	e.PATCH("/unit_api/jobs/stop", s.unitStopJobs)
	e.GET("/unit_api/capabilities", s.unitCapabilities)
	e.POST("/unit_api/system/shutdown", s.unitShutdown)
	e.PATCH("/unit_api/system/shutdown", s.unitShutdown)
	e.POST("/unit_api/system/repair", s.unitRepair)
	e.PATCH("/unit_api/system/repair", s.unitRepair)
	e.GET("/unit_api/jobs/descriptors", s.unitJobDescriptors)
	e.GET("/unit_api/settings/descriptors", s.settingsDescriptors)
	e.GET("/unit_api/automations/descriptors/:type", s.unitAutomationDescriptors)
	e.POST("/unit_api/jobs/run/job_name/:job", s.unitRun)
	e.PATCH("/unit_api/jobs/run/job_name/:job", s.unitRun)
	e.PATCH("/unit_api/jobs/update/job_name/:job", s.unitUpdate)
	e.POST("/unit_api/jobs/stop/job_name/:job", s.unitStop)
	e.POST("/unit_api/jobs/stop/all", s.unitStopAll)
	e.PATCH("/unit_api/jobs/stop/all", s.unitStopAll)
	e.GET("/unit_api/long_running_jobs/running", s.unitLongRunningJobs)
	e.GET("/unit_api/versions/app", s.unitVersions)
	e.GET("/unit_api/usb", s.unitUSB)
	e.GET("/unit_api/system/disk_space", s.unitDiskSpace)
	e.GET("/unit_api/system/memory", s.unitMemory)
	e.GET("/unit_api/system/ipv4", s.unitIPv4)
	e.GET("/api/config/shared", s.getSharedConfig)
	e.GET("/api/local_access_point", s.localAccessPoint)
	e.GET("/api/models", s.getModels)
	// Exports are made and served by the node asked: every node holds every
	// reading, and the browser downloads the file from the node it asked.
	e.GET("/api/datasets/exportable", s.listDatasets)
	e.GET("/api/datasets/exportable/:name/preview", s.previewDataset)
	e.POST("/api/datasets/exportable/export", s.exportData)
	e.GET("/exports/:filename", s.downloadExport)
	e.HEAD("/exports/:filename", s.downloadExport)

	// The cluster's API: answered by the leader, forwarded by followers.
	g := e.Group("/api", s.leaderOrForward)
	g.GET("/cluster", s.getCluster)
	g.GET("/cluster/events", s.getEvents)
	g.POST("/cluster/keys/rotate", s.rotateKeys)
	g.POST("/cluster/security/enable", s.enableSecurity)
	g.GET("/experiments/:exp/time_series/:series", s.timeSeries)
	g.GET("/experiments/:exp/time_series/:series/:column", s.columnTimeSeries)
	g.GET("/workers/:unit/experiments/:exp/time_series/:series", s.unitTimeSeries)
	g.GET("/workers/:unit/experiments/:exp/time_series/:series/:column", s.unitColumnTimeSeries)
	g.GET("/experiments/:exp/media_rates", s.mediaRates)
	g.POST("/workers/:unit/experiments/:exp/logs", s.postLog)
	g.POST("/units/:unit/experiments/:exp/logs", s.postLog)
	g.GET("/units/:unit/system_logs", s.systemLogs)
	g.GET("/logs", s.logs)
	g.GET("/experiments/:exp/logs", s.logs)
	g.GET("/experiments/:exp/recent_logs", s.logs)
	g.GET("/workers/:unit/experiments/:exp/logs", s.logs)
	g.GET("/workers/:unit/experiments/:exp/recent_logs", s.logs)
	g.GET("/units/:unit/logs", s.logs)
	g.GET("/jobs/descriptors", s.jobDescriptors)
	g.GET("/settings/descriptors", s.settingsDescriptors)
	g.GET("/automations/descriptors/:type", s.automationDescriptors)
	g.GET("/charts/descriptors", s.chartDescriptors)
	g.GET("/workers/:unit/jobs/descriptors", s.workerJobDescriptors)
	g.GET("/workers/:unit/settings/descriptors", s.workerSettingsDescriptors)
	g.GET("/workers/:unit/automations/descriptors/:type", s.workerAutomationDescriptors)
	g.GET("/units", s.getUnits)
	g.GET("/workers", s.getWorkers)
	g.PUT("/workers", s.addWorker)
	g.GET("/workers/discover", s.discoverWorkers)
	g.POST("/workers/setup", s.setupWorker)
	g.PUT("/workers/:unit/model", s.putWorkerModel)
	g.GET("/workers/:unit/model", s.getWorkerModel)
	g.GET("/config/units/:unit", s.getUnitConfig)
	g.GET("/workers/assignments", s.assignments)
	g.GET("/workers/:unit", s.getWorker)
	g.DELETE("/workers/:unit", s.removeWorker)
	g.PUT("/workers/:unit/is_active", s.setActive)
	g.GET("/workers/:unit/experiment", s.workerExperiment)
	g.POST("/workers/:unit/blink", s.blink)
	g.POST("/units/:unit/system/reboot", s.reboot)
	g.POST("/units/:unit/system/shutdown", s.shutdown)
	g.POST("/units/:unit/system/repair", s.repair)
	g.GET("/units/:unit/versions/app", s.getVersions)
	g.GET("/units/:unit/capabilities", s.getCapabilities)
	g.GET("/workers/:unit/capabilities", s.getCapabilities)
	g.GET("/workers/:unit/jobs/settings/job_name/:job/experiments/:exp", s.getJobSettings)
	g.GET("/workers/:unit/jobs/settings/job_name/:job/setting/:setting/experiments/:exp", s.getJobSetting)
	g.DELETE("/workers/assignments", s.unassignEverywhere)
	// Pioreactor takes POST and PATCH for run and stop; its UI runs jobs with PATCH.
	g.POST("/workers/:unit/jobs/run/job_name/:job/experiments/:exp", s.runJob)
	g.PATCH("/workers/:unit/jobs/run/job_name/:job/experiments/:exp", s.runJob)
	g.POST("/workers/:unit/jobs/stop/job_name/:job/experiments/:exp", s.stopJob)
	g.PATCH("/workers/:unit/jobs/stop/job_name/:job/experiments/:exp", s.stopJob)
	g.POST("/workers/:unit/jobs/stop/experiments/:exp", s.stopExperimentJobs)
	g.PATCH("/workers/:unit/jobs/stop/experiments/:exp", s.stopExperimentJobs)
	g.PATCH("/workers/:unit/jobs/update/job_name/:job/experiments/:exp", s.updateJob)
	g.GET("/workers/:unit/jobs/running", s.runningJobs)
	g.GET("/experiments", s.getExperiments)
	g.POST("/experiments", s.createExperiment)
	g.GET("/experiments/assignment_count", s.assignmentCount)
	g.GET("/experiments/latest", s.latestExperiment)
	g.GET("/experiments/active", s.activeExperiments)
	g.GET("/experiments/:exp", s.getExperiment)
	g.PATCH("/experiments/:exp", s.patchExperiment)
	g.DELETE("/experiments/:exp", s.deleteExperiment)
	g.GET("/experiments/:exp/workers", s.experimentWorkers)
	g.PUT("/experiments/:exp/workers", s.assignWorker)
	g.DELETE("/experiments/:exp/workers", s.unassignAll)
	g.DELETE("/experiments/:exp/workers/:unit", s.unassignWorker)
	g.GET("/experiments/:exp/historical_worker_assignments", s.historicalAssignments)
	g.GET("/experiments/:exp/unit_labels", s.getUnitLabels)
	g.PUT("/experiments/:exp/unit_labels", s.putUnitLabel)
	g.GET("/experiment_profiles", s.listProfiles)
	g.POST("/experiment_profiles", s.createProfile)
	g.POST("/experiment_profiles/validate", s.validateProfile)
	g.POST("/experiment_profiles/dry_run", s.dryRunProfile)
	g.GET("/experiment_profiles/:filename", s.getProfile)
	g.PATCH("/experiment_profiles/:filename", s.editProfile)
	g.DELETE("/experiment_profiles/:filename", s.deleteProfile)
	g.GET("/experiments/:exp/experiment_profiles/running", s.runningProfiles)
	g.GET("/experiments/:exp/experiment_profiles/recent", s.recentProfiles)
	g.POST("/experiments/:exp/experiment_profiles/runs", s.startRun)
	g.POST("/experiments/:exp/experiment_profiles/runs/:id/stop", s.stopRun)
	g.PATCH("/experiments/:exp/unit_labels", s.putUnitLabel)
	s.engine = e
	s.bcast = newBroadcaster(s, cfg.MaxEventStreams)
	if dir, err := s.exportDir(); err != nil {
		s.log.Warn("export dir not made: exports will fail", "dir", cfg.ExportDir, "error", err)
	} else if dir != "" {
		export.Prune(dir, time.Now(), s.log)
	}
	return s
}

// Handler returns the http.Handler of the API.
func (s *Server) Handler() http.Handler { return s.engine }

// Close stops the tasks this server runs and the event broadcaster, ends the
// event streams, and waits for them.
func (s *Server) Close() {
	s.bcast.close()
	s.tasks.close()
}
