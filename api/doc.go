// Package api serves a node's HTTP API with Gin: the cluster's /api (answered
// by the leader; followers forward to it), this node's /unit_api, and the
// errors every handler answers with: {"error", "status", "cause", "remediation"}.
package api
