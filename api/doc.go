// Package api serves a node's HTTP API with Gin: the cluster's /api (answered
// by the leader; followers forward to it), this node's /unit_api, the exports
// of experiment data (made by package export and served by the node asked:
// /exports), and the errors every handler answers with: {"error", "status",
// "cause", "remediation"}.
package api
