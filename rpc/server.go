package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pioreactor/pio/cluster"
	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/trust"
)

// maxBodyBytes bounds the body of a node-to-node call (a readings batch is under 1 MiB).
const maxBodyBytes = 2 << 20

// sourceHeader carries the address a call came from when a member passes it
// on to the leader (for the log of refusals); believed only from a member.
const sourceHeader = "X-Pio-Source"

// maxHops is how many times a call may be passed on towards the leader.
const maxHops = 3

// Membership is what the node-to-node calls need of the membership manager.
type Membership interface {
	// Credentials checks a joining node's secret and grants it the cluster's secrets.
	Credentials(ctx context.Context, req CredentialsRequest) (trust.Grant, error)
	// AddMember adds a node on the leader.
	AddMember(ctx context.Context, req MemberRequest) (MemberResponse, error)
	// RemoveMember removes a node on the leader.
	RemoveMember(ctx context.Context, nodeID string) error
	// MemberStatus says whether a node ID is in the cluster or was removed from it.
	MemberStatus(nodeID string) (member, removed bool)
}

// Raft is what the node-to-node calls need of this node's Raft peer.
type Raft interface {
	IsLeader() bool
	Leader() (id, addr string)
	Apply(cmd fsm.Command) (fsm.Result, error)
}

// ServerConfig configures a Server.
type ServerConfig struct {
	Transport *Transport
	Client    *Client
	Raft      Raft
	FSM       *fsm.FSM
	Members   Membership
	// Public serves /api and /unit_api for members (forwarded requests and
	// dispatched jobs); it learns that the caller is a member from the
	// request's context (FromMember).
	Public http.Handler
	// Explain, when set, turns errors of the packages below into answers
	// (the public API's table), so an error keeps its meaning across a hop.
	Explain func(error) Error
	// GatherWindow is how often, at most, the leader proposes the workers'
	// batches as one entry; 0 means DefaultGatherWindow.
	GatherWindow time.Duration
	Logger       *slog.Logger
}

// Server answers the node-to-node calls on the cluster port. It runs an
// http.Server on the transport's HTTP listener; Close stops it.
type Server struct {
	cfg     ServerConfig
	hs      *http.Server
	log     *slog.Logger
	limiter readingsLimiter
	gather  *gatherer
}

type ctxKey int

const (
	connKey ctxKey = iota
	memberKey
)

// Caller is who made a node-to-node call.
type Caller struct {
	// NodeID is the node named by the caller's verified certificate ("" on an
	// open cluster, or a node that has no certificate yet).
	NodeID string
	// Member is true when the caller is a member of this cluster: it holds a
	// certificate of the cluster CA and was not removed, or the cluster is open.
	Member bool
}

// FromMember reports whether ctx is of a request that came from a member of
// the cluster over the cluster port (the public API then asks no API token).
func FromMember(ctx context.Context) bool {
	c, ok := ctx.Value(memberKey).(Caller)
	return ok && c.Member
}

// NewServer starts answering node-to-node calls.
func NewServer(cfg ServerConfig) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	s.gather = newGatherer(cfg.Raft.Apply, cfg.GatherWindow)
	s.hs = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey, c)
		},
		ConnState: ConnState,
		ErrorLog:  slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := s.hs.Serve(cfg.Transport.HTTPListener()); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, ErrClosed) {
			s.log.Error("node-to-node server stopped", "error", err)
		}
	}()
	return s
}

// Close stops the server, waiting up to a few seconds for calls in flight.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	// The gatherer first: its batches are answered when their entry is
	// applied, and Shutdown waits for those requests.
	s.gather.close()
	return s.hs.Shutdown(ctx)
}

// caller says who sent r: the peer of its connection, or (from a member
// passing a call on) the node named in the caller header.
func (s *Server) caller(r *http.Request) (Caller, bool) {
	pc, _ := r.Context().Value(connKey).(*peerConn)
	if pc == nil {
		return Caller{}, false
	}
	if !pc.tls {
		// A plain connection is only accepted while the cluster is open (or
		// moving to TLS): everyone is a member, as before pio had secrets.
		return Caller{NodeID: r.Header.Get(callerHeader), Member: true}, true
	}
	if pc.peer == "" {
		return Caller{}, true // a joining node: it may only ask for credentials
	}
	if s.cfg.FSM.Removed(pc.peer) {
		return Caller{NodeID: pc.peer}, true
	}
	c := Caller{NodeID: pc.peer, Member: true}
	if v := r.Header.Get(callerHeader); v != "" {
		c.NodeID = v
	}
	return c, true
}

// ServeHTTP routes a node-to-node call.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, ok := s.caller(r)
	if !ok {
		s.writeError(w, &Error{Status: http.StatusForbidden, Message: "not a cluster connection"})
		return
	}
	path := r.URL.Path
	if path == "/rpc/credentials" && r.Method == http.MethodPost {
		s.credentials(w, r, c)
		return
	}
	if !c.Member {
		// A removed node may still learn that it was removed.
		if c.NodeID != "" && r.Method == http.MethodGet && path == "/rpc/members/"+c.NodeID {
			s.memberStatus(w, r, c.NodeID)
			return
		}
		s.refuse(r, "a node-to-node call without a node certificate of this cluster (or from a removed node)", c)
		s.writeError(w, &Error{Status: http.StatusForbidden, Message: "not a member of this cluster",
			Cause:       "this call needs a node certificate of the cluster's CA, from a node that was not removed",
			Remediation: "join the cluster with its token: `pio join HOST --token TOKEN`"})
		return
	}
	ctx := context.WithValue(r.Context(), memberKey, c)
	r = r.WithContext(ctx)
	switch {
	case path == "/rpc/members" && r.Method == http.MethodPost:
		s.addMember(w, r, c)
	case strings.HasPrefix(path, "/rpc/members/"):
		id := strings.TrimPrefix(path, "/rpc/members/")
		switch r.Method {
		case http.MethodGet:
			s.viaLeader(w, r, c, func(_ []byte) { s.memberStatus(w, r, id) })
		case http.MethodDelete:
			s.removeMember(w, r, c, id)
		default:
			s.writeError(w, &Error{Status: http.StatusMethodNotAllowed, Message: "method not allowed"})
		}
	case path == "/rpc/readings" && r.Method == http.MethodPost:
		s.readings(w, r, c)
	case path == "/rpc/applied" && r.Method == http.MethodGet:
		s.applied(w, r)
	case strings.HasPrefix(path, "/api/") || strings.HasPrefix(path, "/unit_api/"):
		s.cfg.Public.ServeHTTP(w, r)
	default:
		s.writeError(w, &Error{Status: http.StatusNotFound, Message: "no such node-to-node call", Cause: r.Method + " " + path})
	}
}

func (s *Server) refuse(r *http.Request, reason string, c Caller) {
	s.cfg.Transport.Refusals().Refused(s.source(r), reason, "call", r.Method+" "+r.URL.Path, "node_id", c.NodeID)
}

// source is the address a call came from: its connection's, or the one a
// member that passed it on says.
func (s *Server) source(r *http.Request) string {
	if v := r.Header.Get(sourceHeader); v != "" {
		if pc, _ := r.Context().Value(connKey).(*peerConn); pc != nil && pc.peer != "" {
			return v
		}
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	return host
}

// readBody reads a bounded body; on failure it has answered 400.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		s.writeError(w, &Error{Status: http.StatusBadRequest, Message: "bad request body", Cause: err.Error()})
		return nil, false
	}
	return b, true
}

// decode reads a JSON object strictly into v; on failure it has answered 400.
func (s *Server) decode(w http.ResponseWriter, body []byte, v any) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		s.writeError(w, &Error{Status: http.StatusBadRequest, Message: "bad request body", Cause: err.Error(),
			Remediation: "nodes of different pio versions? upgrade them all"})
		return false
	}
	return true
}

// viaLeader runs handle on the leader: here if this node leads, else it
// passes the call on to the leader, in the name of the caller.
func (s *Server) viaLeader(w http.ResponseWriter, r *http.Request, c Caller, handle func(body []byte)) {
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	if s.cfg.Raft.IsLeader() {
		handle(body)
		return
	}
	hops, _ := strconv.Atoi(r.Header.Get(HopsHeader))
	_, addr := s.cfg.Raft.Leader()
	if addr == "" || hops >= maxHops {
		w.Header().Set(NotLeaderHeader, "1")
		s.writeError(w, &Error{Status: http.StatusServiceUnavailable, Message: "no leader", Cause: "this node knows no leader right now",
			Remediation: "retry in a moment"})
		return
	}
	hdr := http.Header{}
	for _, h := range []string{"Content-Type", RequestIDHeader} {
		if v := r.Header.Get(h); v != "" {
			hdr.Set(h, v)
		}
	}
	hdr.Set(callerHeader, c.NodeID)
	hdr.Set(sourceHeader, s.source(r))
	hdr.Set(HopsHeader, strconv.Itoa(hops+1))
	resp, err := s.cfg.Client.Forward(r.Context(), addr, r.Method, r.URL.RequestURI(), hdr, body)
	if err != nil {
		w.Header().Set(NotLeaderHeader, "1")
		s.writeError(w, &Error{Status: http.StatusServiceUnavailable, Message: "cannot reach the leader", Cause: err.Error(), Remediation: "retry in a moment"})
		return
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", NotLeaderHeader, "Retry-After"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(resp.Body, maxAnswerBytes))
}

// credentials answers POST /rpc/credentials, on the leader, for a node
// without a certificate (see Membership.Credentials).
func (s *Server) credentials(w http.ResponseWriter, r *http.Request, c Caller) {
	s.viaLeader(w, r, c, func(body []byte) {
		var req CredentialsRequest
		if !s.decode(w, body, &req) {
			return
		}
		g, err := s.cfg.Members.Credentials(r.Context(), req)
		if err != nil {
			var e *Error
			if errors.As(err, &e) && e.Status == http.StatusForbidden {
				s.cfg.Transport.Refusals().Refused(s.source(r), "a join with a wrong secret", "name", req.Name, "node_id", req.NodeID)
			}
			s.writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, g)
	})
}

func (s *Server) addMember(w http.ResponseWriter, r *http.Request, c Caller) {
	s.viaLeader(w, r, c, func(body []byte) {
		var req MemberRequest
		if !s.decode(w, body, &req) {
			return
		}
		if c.NodeID != "" && req.NodeID != c.NodeID {
			s.writeError(w, &Error{Status: http.StatusForbidden, Message: "a node may only add itself",
				Cause: fmt.Sprintf("node %s asked to add node %s", c.NodeID, req.NodeID)})
			return
		}
		resp, err := s.cfg.Members.AddMember(r.Context(), req)
		if err != nil {
			s.writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	})
}

func (s *Server) removeMember(w http.ResponseWriter, r *http.Request, c Caller, id string) {
	s.viaLeader(w, r, c, func([]byte) {
		if c.NodeID != "" && id != c.NodeID {
			s.writeError(w, &Error{Status: http.StatusForbidden, Message: "a node may only remove itself over the cluster port",
				Cause: fmt.Sprintf("node %s asked to remove node %s", c.NodeID, id), Remediation: "remove other nodes with DELETE /api/workers/{unit}"})
			return
		}
		if err := s.cfg.Members.RemoveMember(r.Context(), id); err != nil {
			s.writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func (s *Server) memberStatus(w http.ResponseWriter, r *http.Request, id string) {
	member, removed := s.cfg.Members.MemberStatus(id)
	writeJSON(w, http.StatusOK, MemberStatus{NodeID: id, Member: member, Removed: removed})
}

// applied answers GET /rpc/applied?index=N once this node's state machine
// has applied N (or 5 s passed): the index it has applied.
func (s *Server) applied(w http.ResponseWriter, r *http.Request) {
	idx, err := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
	if err != nil {
		s.writeError(w, &Error{Status: http.StatusBadRequest, Message: "bad index", Cause: err.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	got, err := s.cfg.FSM.WaitApplied(ctx, idx)
	if err != nil {
		s.writeError(w, &Error{Status: http.StatusGatewayTimeout, Message: "not applied in time",
			Cause: fmt.Sprintf("applied %d, waiting for %d", got, idx)})
		return
	}
	writeJSON(w, http.StatusOK, Applied{Index: got})
}

// errorFor maps an error to an answer.
func (s *Server) errorFor(err error) *Error {
	var e *Error
	if errors.As(err, &e) && e.Status != 0 {
		return e
	}
	if s != nil && s.cfg.Explain != nil {
		x := s.cfg.Explain(err)
		return &x
	}
	switch {
	case errors.Is(err, cluster.ErrNotLeader):
		return &Error{Status: http.StatusServiceUnavailable, Message: "not the leader", Cause: err.Error(), Remediation: "retry"}
	case errors.Is(err, cluster.ErrOutcomeUnknown), errors.Is(err, cluster.ErrShutdown), errors.Is(err, cluster.ErrTimeout):
		return &Error{Status: http.StatusServiceUnavailable, Message: "try again", Cause: err.Error(), Remediation: "retry with the same request ID"}
	case errors.Is(err, fsm.ErrBadPayload), errors.Is(err, fsm.ErrUnitNotFound), errors.Is(err, fsm.ErrRemoved):
		return &Error{Status: http.StatusBadRequest, Message: "refused", Cause: err.Error()}
	case errors.Is(err, fsm.ErrNameTaken):
		return &Error{Status: http.StatusConflict, Message: "unit name already taken", Cause: err.Error(),
			Remediation: "give this node another name (--name), or remove the other node first"}
	}
	return &Error{Status: http.StatusInternalServerError, Message: "internal error", Cause: err.Error(), Remediation: "look at the node's log"}
}

func (s *Server) writeError(w http.ResponseWriter, err error) {
	e := s.errorFor(err)
	if e.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
		if e.Message == "not the leader" {
			w.Header().Set(NotLeaderHeader, "1")
		}
	}
	writeJSON(w, e.Status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
