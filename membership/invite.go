package membership

import (
	"context"
	"crypto/ed25519"
	"crypto/subtle"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/pioreactor/pio/cluster"
	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/rpc"
	"github.com/pioreactor/pio/trust"
)

// "Add new Pioreactor" by name (PUT /api/workers) stays one step: the leader
// makes a one-time ticket for that name and invites the node with a join
// token that carries the ticket instead of the cluster's secret. A fresh node
// (standalone, holding nothing but its own registration) accepts the first
// invitation it gets, trusting that cluster on first use, and joins as with
// `pio join --token`; a node that is a member, or holds data, accepts none. A
// ticket works once, for that name, for ticketTTL.

// ticketTTL is how long an invitation can be used.
const ticketTTL = 2 * time.Minute

// maxTickets bounds the invitations a node keeps.
const maxTickets = 64

type ticket struct {
	name    string
	expires time.Time
}

// tickets are the one-time invitations this node handed out.
type tickets struct {
	mu sync.Mutex
	m  map[string]ticket
}

// add records a new ticket for name.
func (t *tickets) add(secret, name string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]ticket{}
	}
	for s, tk := range t.m {
		if now.After(tk.expires) || len(t.m) >= maxTickets {
			delete(t.m, s)
		}
	}
	t.m[secret] = ticket{name: name, expires: now.Add(ticketTTL)}
}

// use consumes the ticket secret if it is valid for name.
func (t *tickets) use(secret, name string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for s, tk := range t.m {
		if subtle.ConstantTimeCompare([]byte(s), []byte(secret)) == 1 {
			if tk.name != name || now.After(tk.expires) {
				return false
			}
			delete(t.m, s)
			return true
		}
	}
	return false
}

// Invite makes a one-time invitation for the node called name: a join token
// that carries a ticket instead of the cluster's secret ("" for a cluster
// without secrets, which needs none).
func (m *Manager) Invite(name string) (string, error) {
	b := m.trust.Current()
	if b == nil {
		return "", nil
	}
	secret := trust.NewTicket()
	m.tickets.add(secret, name, time.Now())
	return trust.Token{CAHash: b.CAHash(), Secret: secret}.String(), nil
}

// AcceptInvitation is the invited node's side: a fresh node joins the
// cluster of the inviting node at addr with the invitation's token. A node
// that is not fresh refuses (ErrNotFresh); a node pinned by its configured
// join token refuses invitations of any other cluster (ErrPinned).
func (m *Manager) AcceptInvitation(ctx context.Context, addr, token string) (JoinResult, error) {
	servers, err := m.node.Servers()
	if err != nil {
		return JoinResult{}, err
	}
	if !m.fresh(servers) {
		return JoinResult{}, fmt.Errorf("%w: it is in a cluster of %d node(s) or holds data of its own", ErrNotFresh, len(servers))
	}
	if m.cfg.JoinToken != "" {
		pin, err := trust.ParseToken(m.cfg.JoinToken)
		if err != nil {
			return JoinResult{}, fmt.Errorf("%w: the configured join_token: %v", ErrBadToken, err)
		}
		inv, err := trust.ParseToken(token)
		if err != nil || inv.CAHash != pin.CAHash {
			return JoinResult{}, fmt.Errorf("%w (%s…): the invitation is of another cluster", ErrPinned, pin.CAHash[:12])
		}
	}
	m.log.Info("accepting an invitation (trust on first use)", "from", addr)
	return m.Join(ctx, addr, token, false)
}

// Fresh reports whether this node would accept an invitation now: a cluster
// of one that holds nothing but its own registration (discovery advertises it).
func (m *Manager) Fresh() bool {
	servers, err := m.node.Servers()
	return err == nil && m.fresh(servers)
}

func (m *Manager) fresh(servers []cluster.Server) bool {
	return len(servers) <= 1 && (!m.node.HadState() || m.fsm.HoldsOnly(m.cfg.Self.NodeID))
}

// Credentials answers, on the leader, a joining node (the first node-to-node
// call of a join, made without a certificate): if it proves the join secret,
// or a ticket for its name, it is granted the cluster's secrets and a
// certificate for its key. A node removed before may come back this way.
func (m *Manager) Credentials(ctx context.Context, req rpc.CredentialsRequest) (trust.Grant, error) {
	b := m.trust.Current()
	if b == nil {
		return trust.Grant{}, &rpc.Error{Status: http.StatusConflict, Message: "this cluster has no secrets",
			Cause: "it was made by a pio without secrets", Remediation: "join it without a token, or run `pio security enable` on it first"}
	}
	if why := fsm.ValidUnitName(req.Name); why != "" {
		return trust.Grant{}, &rpc.Error{Status: http.StatusBadRequest, Message: "invalid unit name", Cause: why}
	}
	if _, err := uuid.Parse(req.NodeID); err != nil || len(req.PublicKey) != ed25519.PublicKeySize {
		return trust.Grant{}, &rpc.Error{Status: http.StatusBadRequest, Message: "bad credentials request", Cause: "node_id must be a UUID and public_key an Ed25519 key"}
	}
	if !b.CheckJoinSecret(req.Secret) && !m.tickets.use(req.Secret, req.Name, time.Now()) {
		return trust.Grant{}, &rpc.Error{Status: http.StatusForbidden, Message: "wrong join secret",
			Cause:       "the token's secret is not this cluster's, or the invitation is used up, expired or for another name",
			Remediation: "print the join token with `sudo pio token` on a member of the cluster and join with --token"}
	}
	if u, ok := m.fsm.UnitByName(req.Name); ok && u.NodeID != req.NodeID {
		return trust.Grant{}, &rpc.Error{Status: http.StatusConflict, Message: "unit name already taken in that cluster",
			Cause: fmt.Sprintf("%q is node %s at %s", req.Name, u.NodeID, u.HTTPAddr), Remediation: "give this node another name (--name), or remove the other node first"}
	}
	if m.fsm.Removed(req.NodeID) {
		// Removed before, and now it proved the secret: it may come back.
		if err := m.apply(fsm.CmdReadmit, fsm.RemoveUnit{NodeID: req.NodeID}); err != nil {
			return trust.Grant{}, err
		}
	}
	g, err := b.Grant(req.NodeID, ed25519.PublicKey(req.PublicKey), m.currentKeyring())
	if err != nil {
		return trust.Grant{}, err
	}
	m.log.Info("granted a joining node the cluster's secrets", "name", req.Name, "node_id", req.NodeID)
	return g, nil
}
