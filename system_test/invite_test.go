package system

import (
	"errors"
	"github.com/pioreactor/pio/agent"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pioreactor/pio/api/client"
)

// "Add new Pioreactor" by name: only a fresh node accepts an invitation
// (trust on first use); a node with a join_token accepts its own cluster's
// only; a member accepts none; a node removed from the cluster is fresh again.
func TestInvitationsOnlyForFreshNodes(t *testing.T) {
	lead := startNode(t, "lead")
	waitCluster(t, []*testNode{lead}, 1, 1)
	other := startNode(t, "other") // another cluster, which wants lead's workers
	waitCluster(t, []*testNode{other}, 1, 1)

	// A fresh node pinned to lead's cluster by its join_token refuses other's invitation...
	pinned := startNode(t, "pinned", func(c *agent.Config) { c.JoinToken = lead.joinToken() })
	waitCluster(t, []*testNode{pinned}, 1, 1)
	code, ae := call(t, other, http.MethodPut, "/api/workers", map[string]any{"pioreactor_unit": "pinned", "address": pinned.addr()}, nil)
	if code != http.StatusForbidden || !strings.Contains(ae.Message, "pinned") {
		t.Fatalf("another cluster invited a pinned node: %d %+v", code, ae)
	}
	waitCluster(t, []*testNode{pinned}, 1, 1)
	// ...and accepts lead's.
	if code, ae := call(t, lead, http.MethodPut, "/api/workers", map[string]any{"pioreactor_unit": "pinned", "address": pinned.addr()}, nil); code != http.StatusCreated {
		t.Fatalf("add pinned: %d %+v", code, ae)
	}
	waitCluster(t, []*testNode{lead, pinned}, 2, 2)

	// A member refuses any invitation: the other cluster cannot take it.
	code, ae = call(t, other, http.MethodPut, "/api/workers", map[string]any{"pioreactor_unit": "pinned", "address": pinned.addr()}, nil)
	if code != http.StatusConflict || !strings.Contains(ae.Message, "accepts no invitation") {
		t.Fatalf("a member accepted an invitation: %d %+v", code, ae)
	}
	// A forged invitation sent straight to a member changes nothing either.
	var jr client.JoinResponse
	err := pinned.anonymous().Do(ctx, http.MethodPost, "/unit_api/invitation", map[string]string{"address": other.addr(), "token": other.joinToken()}, &jr)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusConflict {
		t.Fatalf("a forged invitation to a member: %v", err)
	}
	waitCluster(t, []*testNode{lead, pinned}, 2, 2)

	// A node holding data of its own is not fresh.
	holder := startNode(t, "holder")
	waitCluster(t, []*testNode{holder}, 1, 1)
	if code, _ := createExperiment(t, holder, "mine"); code != http.StatusCreated {
		t.Fatal(code)
	}
	if code, ae := call(t, lead, http.MethodPut, "/api/workers", map[string]any{"pioreactor_unit": "holder", "address": holder.addr()}, nil); code != http.StatusConflict {
		t.Fatalf("a node holding data accepted an invitation: %d %+v", code, ae)
	}
	if exps, _ := experimentsOf(holder); !exps["mine"] {
		t.Fatal("the refused invitation lost the node's data")
	}

	// Removed, the pinned node is fresh again (new secrets), and its own cluster may add it back.
	oldCA := pinned.a.Trust().Current().CAHash()
	if code, ae := call(t, lead, http.MethodDelete, "/api/workers/pinned", nil, nil); code != http.StatusAccepted {
		t.Fatalf("remove: %d %+v", code, ae)
	}
	eventually(t, 20*time.Second, "the removed node is standalone with new secrets", func() error {
		h, err := pinned.c.Health(ctx)
		if err != nil {
			return err
		}
		if b := pinned.rt.Current().Trust().Current(); !h.Leader || h.ClusterSize != 1 || b == nil || b.CAHash() == oldCA {
			return errors.New("not yet")
		}
		return nil
	})
	if code, ae := call(t, lead, http.MethodPut, "/api/workers", map[string]any{"pioreactor_unit": "pinned", "address": pinned.addr()}, nil); code != http.StatusCreated {
		t.Fatalf("add again after removal: %d %+v", code, ae)
	}
	waitCluster(t, []*testNode{lead, pinned}, 2, 2)
	if got := pinned.rt.Current().Trust().Current(); got == nil || got.CAHash() != lead.rt.Current().Trust().Current().CAHash() {
		t.Fatal("the re-added node does not hold the cluster's secrets")
	}
}
