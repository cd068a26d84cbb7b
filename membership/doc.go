// Package membership decides who is in the cluster: it joins this node to a
// cluster and leaves it, adds and removes peers on the leader (capping voters),
// and keeps this node's own registration in the inventory current. Gossip
// (hashicorp/memberlist) will feed it too; the leader is the one that acts.
package membership
