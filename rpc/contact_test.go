package rpc

import (
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestLastContactOverRaft checks that each side of a Raft connection records
// when the other last sent it bytes, under the node ID of the other's
// certificate, and nothing for a node it never heard from.
func TestLastContactOverRaft(t *testing.T) {
	a, c, la, lc := raftPair(t, "127.0.9.11", "127.0.9.12", ModeSecure)
	accepted := make(chan error, 1)
	go func() {
		conn, err := la.Accept()
		if err != nil {
			accepted <- err
			return
		}
		defer conn.Close()
		var p [1]byte
		if _, err := io.ReadFull(conn, p[:]); err != nil { // c's request
			accepted <- err
			return
		}
		_, err = conn.Write(p[:]) // a's answer
		accepted <- err
	}()
	conn, err := lc.Dial(raft.ServerAddress(a.t.Addr().String()), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if !a.t.LastContact(c.id).IsZero() || !c.t.LastContact(a.id).IsZero() {
		t.Fatal("contact recorded before any byte of Raft was sent")
	}
	before := time.Now()
	if _, err := conn.Write([]byte{9}); err != nil {
		t.Fatal(err)
	}
	var p [1]byte
	if _, err := io.ReadFull(conn, p[:]); err != nil {
		t.Fatal(err)
	}
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
	if at := a.t.LastContact(c.id); at.Before(before) {
		t.Errorf("the accepting side last heard from the dialler at %v, before it sent (%v)", at, before)
	}
	if at := c.t.LastContact(a.id); at.Before(before) {
		t.Errorf("the dialling side last heard from the other at %v, before it answered (%v)", at, before)
	}
	if at := a.t.LastContact(a.id); !at.IsZero() {
		t.Errorf("a node it never heard from has a contact time: %v", at)
	}
}
