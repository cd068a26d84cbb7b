// Package worker is the worker side of a node: what it does for the jobs it
// runs besides running them. Today that is shipping their readings, job logs
// and job reports to the leader (Shipper).
package worker
