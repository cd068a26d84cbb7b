package api

import (
	"context"
	"net/http"
	"sync"

	"github.com/gin-gonic/gin"
	"github.com/pioreactor/pio/fsm"
)

// unassignEverywhere answers DELETE /api/workers/assignments: every unit
// leaves its experiment (one replicated command), then each unit that was
// assigned is told to stop its jobs (their workers halt them anyway once
// they apply the change). A 202 task, its result {unit: {"stopped": [...]}}.
func (s *Server) unassignEverywhere(c *gin.Context) {
	if !readOptionalEmptyBody(c) || !s.readable(c) {
		return
	}
	var units []fsm.Unit
	for _, a := range s.fsm.Assignments() {
		if u, ok := s.fsm.UnitByID(a.NodeID); ok {
			units = append(units, u)
		}
	}
	if !s.apply(c, fsm.CmdUnassignEverywhere, struct{}{}) {
		return
	}
	index := s.fsm.AppliedIndex()
	c.JSON(http.StatusAccepted, s.tasks.run(fsm.Broadcast, func(ctx context.Context) (any, error) {
		results := map[string]any{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, u := range units {
			wg.Add(1)
			go func(u fsm.Unit) {
				defer wg.Done()
				var out any
				err := s.callUnit(ctx, u.RaftAddr, http.MethodPost, "/unit_api/jobs/stop/all", struct{}{}, &out, index)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					results[u.Name] = gin.H{"error": errCause(err)}
					return
				}
				results[u.Name] = out
			}(u)
		}
		wg.Wait()
		return results, nil
	}))
}
