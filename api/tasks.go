package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/pioreactor/pio/api/client"
	"github.com/pioreactor/pio/rpc"
)

// maxTasks bounds how many finished tasks a node remembers.
const maxTasks = 1000

// taskTimeout is how long a task may run unless it says otherwise (runFor).
const taskTimeout = 2 * time.Minute

// task is work answered with 202 and polled at /unit_api/task_results/{id}.
type task struct {
	ID   string `json:"task_id"`
	Unit string `json:"unit"`
	// ResultURLPath is where the task is polled, in every answer about it, as Pioreactor's.
	ResultURLPath string `json:"result_url_path"`
	Status        string `json:"status"` // pending, running, succeeded, failed
	Result        any    `json:"result,omitempty"`
	Error         string `json:"error,omitempty"`
	Cause         string `json:"cause,omitempty"`
	Remediation   string `json:"remediation,omitempty"`
}

// taskRunner runs tasks in goroutines it owns; wait stops accepting and waits for them.
type taskRunner struct {
	prefix string // this node's ID: task IDs start with it, so any node can find a task's owner
	mu     sync.Mutex
	tasks  map[string]*task
	order  []string
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

func newTaskRunner(nodeID string) *taskRunner {
	ctx, cancel := context.WithCancel(context.Background())
	return &taskRunner{prefix: nodeID, tasks: map[string]*task{}, ctx: ctx, cancel: cancel}
}

// run starts fn as a task for unit, within taskTimeout, and returns its 202 answer.
func (r *taskRunner) run(unit string, fn func(ctx context.Context) (any, error)) gin.H {
	return r.runFor(unit, taskTimeout, fn)
}

// runFor starts fn as a task for unit whose context ends after timeout (or
// when the runner closes), and returns its 202 answer.
func (r *taskRunner) runFor(unit string, timeout time.Duration, fn func(ctx context.Context) (any, error)) gin.H {
	id := r.prefix + "." + uuid.NewString()
	t := &task{ID: id, Unit: unit, Status: "pending", ResultURLPath: "/unit_api/task_results/" + id}
	r.mu.Lock()
	r.tasks[t.ID] = t
	r.order = append(r.order, t.ID)
	if len(r.order) > maxTasks {
		delete(r.tasks, r.order[0])
		r.order = r.order[1:]
	}
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.set(t.ID, func(t *task) { t.Status = "running" })
		ctx, cancel := context.WithTimeout(r.ctx, timeout)
		defer cancel()
		res, err := fn(ctx)
		r.set(t.ID, func(t *task) {
			if err == nil {
				t.Status, t.Result = "succeeded", res
				return
			}
			t.Status = "failed"
			var ce *client.Error
			var re *rpc.Error
			if errors.As(err, &ce) || errors.As(err, &re) {
				e := Explain(err)
				t.Error, t.Cause, t.Remediation = e.Message, e.Cause, e.Remediation
			} else {
				t.Error, t.Cause, t.Remediation = "task failed", err.Error(), "retry; if it fails again, look at the unit's log"
			}
		})
	}()
	return gin.H{"unit": unit, "task_id": t.ID, "result_url_path": t.ResultURLPath, "status": "accepted"}
}

func (r *taskRunner) set(id string, f func(*task)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.tasks[id]; ok {
		f(t)
	}
}

func (r *taskRunner) get(id string) (task, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.tasks[id]
	if !ok {
		return task{}, false
	}
	return *t, true
}

// close cancels running tasks and waits for them.
func (r *taskRunner) close() {
	r.cancel()
	r.wg.Wait()
}

// taskResult answers GET /unit_api/task_results/{id}: 202 while pending or
// running, 200 when done. A task of another node is fetched from that node.
func (s *Server) taskResult(c *gin.Context) {
	id := c.Param("id")
	if t, ok := s.tasks.get(id); ok {
		if t.Status == "pending" || t.Status == "running" {
			c.JSON(http.StatusAccepted, gin.H{"status": t.Status, "task_id": t.ID, "unit": t.Unit, "result_url_path": t.ResultURLPath})
			return
		}
		c.JSON(http.StatusOK, t)
		return
	}
	owner, _, _ := strings.Cut(id, ".")
	if u, ok := s.fsm.UnitByID(owner); ok && owner != s.cfg.NodeID && c.GetHeader(rpc.HopsHeader) == "" {
		if err := s.forward(c, "", u.RaftAddr, nil, 1); err == nil {
			return
		}
	}
	abort(c, http.StatusNotFound, "no such task", "task "+id+" is unknown (finished tasks are kept for the last 1000)", "start the action again")
}
