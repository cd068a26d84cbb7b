package api

import (
	"fmt"
	"net/http"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/pioreactor/pio/membership"
)

// metrics answers GET /metrics in Prometheus' text format, from this node
// alone (a Prometheus scrapes every node): its Raft state, its gossip view,
// the size of its copy of the database, its jobs and its Go runtime.
func (s *Server) metrics(c *gin.Context) {
	var b strings.Builder
	described := map[string]bool{}
	gauge := func(name, help string, v float64, labels ...string) {
		if !described[name] {
			described[name] = true
			fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
		}
		l := ""
		if len(labels) > 0 {
			l = "{" + strings.Join(labels, ",") + "}"
		}
		fmt.Fprintf(&b, "%s%s %g\n", name, l, v)
	}
	st := s.node.Status()
	leader := 0.0
	if st.State == "Leader" {
		leader = 1
	}
	gauge("pio_raft_leader", "1 if this node leads the cluster.", leader)
	gauge("pio_raft_term", "Raft term this node is in.", float64(st.Term))
	gauge("pio_raft_commit_index", "Last Raft index this node knows committed.", float64(st.CommitIndex))
	gauge("pio_raft_applied_index", "Last Raft index this node applied to its state machine.", float64(st.AppliedIndex))
	contact := 0.0
	if st.State != "Leader" && !st.LastContact.IsZero() {
		contact = time.Since(st.LastContact).Seconds()
	}
	gauge("pio_raft_last_contact_seconds", "Seconds since this follower last heard from the leader (0 on the leader).", contact)
	health := map[string]int{membership.HealthAlive: 0, membership.HealthSuspect: 0, membership.HealthDead: 0, membership.HealthLeft: 0}
	for _, m := range s.mem.States() {
		health[m.Health]++
	}
	names := make([]string, 0, len(health))
	for h := range health {
		names = append(names, h)
	}
	sort.Strings(names)
	for _, h := range names {
		gauge("pio_members", "Members in this node's gossip view, by health.", float64(health[h]), fmt.Sprintf("health=%q", h))
	}
	units, exps := s.fsm.Counts()
	gauge("pio_units", "Units in the inventory.", float64(units))
	gauge("pio_experiments", "Experiments.", float64(exps))
	gauge("pio_readings_stored", "Readings in this node's copy of the readings store.", float64(s.fsm.ReadingsCount()))
	snaps := s.fsm.SnapshotStats()
	gauge("pio_snapshots_total", "Snapshots of the state this node took since it started.", float64(snaps.Count))
	gauge("pio_snapshot_last_bytes", "Bytes written by this node's last snapshot.", float64(snaps.LastBytes))
	gauge("pio_snapshot_last_seconds", "Seconds this node's last snapshot took to write.", snaps.LastSeconds)
	gauge("pio_snapshot_max_seconds", "Seconds the longest snapshot of this node took since it started.", snaps.MaxSeconds)
	if s.cfg.Jobs != nil {
		gauge("pio_jobs_running", "Jobs running on this worker.", float64(len(s.cfg.Jobs.Running())))
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gauge("go_goroutines", "Goroutines that exist now.", float64(runtime.NumGoroutine()))
	gauge("go_memstats_heap_alloc_bytes", "Bytes of allocated heap objects.", float64(ms.HeapAlloc))
	gauge("go_memstats_sys_bytes", "Bytes obtained from the system.", float64(ms.Sys))
	c.Data(http.StatusOK, "text/plain; version=0.0.4; charset=utf-8", []byte(b.String()))
}
