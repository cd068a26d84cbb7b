package membership

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pioreactor/pio/rpc"
)

// Leave takes this node out of its cluster gracefully: a leader first hands
// its leadership to another voter; then the leader removes this node from the
// inventory and the Raft configuration; then this node goes back to standalone.
func (m *Manager) Leave(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, m.cfg.JoinTimeout)
	defer cancel()
	self := m.cfg.Self.NodeID

	servers, err := m.node.Servers()
	if err != nil {
		return err
	}
	otherVoters, others := 0, 0
	for _, s := range servers {
		if s.ID != self {
			others++
			if s.Voter {
				otherVoters++
			}
		}
	}
	if others == 0 {
		return ErrStandalone
	}
	if m.node.IsLeader() {
		if why := m.RemovalBreaksQuorum(self); why != "" {
			return fmt.Errorf("%w: %s", ErrQuorum, why)
		}
		if otherVoters == 0 {
			return fmt.Errorf("%w: no other voter could take over the leadership", ErrNoLeader)
		}
		m.log.Info("leaving: transferring leadership first")
		if err := m.node.TransferLeadership(); err != nil {
			return fmt.Errorf("transfer leadership before leaving: %w", err)
		}
	}
	var leader string
	if err := m.node.WaitLeader(ctx, func(string) bool {
		id, addr := m.node.Leader()
		leader = addr
		return id != "" && id != self && addr != ""
	}); err != nil {
		return fmt.Errorf("%w: no other leader to remove this node", ErrNoLeader)
	}
	for {
		err := m.rpc.RemoveMember(ctx, leader, self)
		if err == nil {
			break
		}
		var re *rpc.Error
		if !errors.As(err, &re) || (re.Status != http.StatusServiceUnavailable && re.Status != 0) {
			return fmt.Errorf("the leader did not remove this node: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the leader did not remove this node: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
		if _, addr := m.node.Leader(); addr != "" {
			leader = addr
		}
	}
	m.log.Info("left the cluster; going back to standalone")
	if err := m.g().Leave(2 * time.Second); err != nil {
		m.log.Warn("leaving gossip", "error", err)
	}
	return m.backToStandalone(ctx)
}
