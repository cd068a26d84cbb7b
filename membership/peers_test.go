package membership

import (
	"fmt"
	"testing"
)

// A node asking whether it was removed asks a few of its peers, not all,
// and not the same ones first as every other node.
func TestPickSomeAsksAFewAtRandom(t *testing.T) {
	var all []string
	for i := 0; i < 200; i++ {
		all = append(all, fmt.Sprintf("127.0.9.%d:8300", i))
	}
	known := map[string]bool{}
	for _, a := range all {
		known[a] = true
	}
	firsts := map[string]int{}
	for round := 0; round < 100; round++ {
		got := pickSome(append([]string(nil), all...), askRemovedMax)
		if len(got) != askRemovedMax {
			t.Fatalf("asked %d peers; want %d", len(got), askRemovedMax)
		}
		seen := map[string]bool{}
		for _, a := range got {
			if !known[a] || seen[a] {
				t.Fatalf("picked %q: not a peer, or twice (%q)", a, got)
			}
			seen[a] = true
		}
		firsts[got[0]]++
	}
	// 100 draws of one of 200: the same first peer more than 10 times is
	// (far) less likely than one in a billion for a random choice.
	for a, n := range firsts {
		if n > 10 {
			t.Errorf("%s asked first %d times in 100: not spread", a, n)
		}
	}
	if got := pickSome([]string{"a:1"}, askRemovedMax); len(got) != 1 {
		t.Errorf("one peer: picked %q", got)
	}
	if got := pickSome(nil, askRemovedMax); len(got) != 0 {
		t.Errorf("no peer: picked %q", got)
	}
}
