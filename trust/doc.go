// Package trust keeps a node's identity (its permanent node ID) and its share
// of the cluster's secrets, and says whom the node trusts: the cluster CA (certificate and key, held by every member
// so that any leader can admit a node), this node's certificate, the join
// secret, the API token and the gossip keyring. They are made when a node
// bootstraps a cluster and handed to a node when it joins; they live in
// DATA_DIR/trust (directory 0700, files 0600).
//
// The join token (`pio token`) is one string that pins the CA by the SHA-256
// of its certificate and carries the join secret, as k3s does: a joining node
// checks the CA before it sends the secret, so a node that pretends to be a
// member learns nothing.
//
// Nothing here touches the network; package rpc builds mutual TLS from a
// Bundle, and membership hands bundles to joining nodes.
package trust
