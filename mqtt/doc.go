// Package mqtt is the MQTT face of a node: every node runs a broker
// (mochi-mqtt) that publishes Pioreactor's topic tree from the cluster's
// replicated state, so that a dashboard subscribed to any node sees the whole
// cluster, and goes on seeing it when the leader dies.
//
// What it publishes, from the state machine's change notifications and
// gossip's (never by polling):
//
//	pioreactor/{unit}/$experiment/monitor/$state     ready or lost (retained)
//	pioreactor/{unit}/$experiment/monitor/versions   {"app": version} from gossip (retained)
//	pioreactor/{unit}/$experiment/monitor/ipv4       the unit's IPv4 address (retained)
//	pioreactor/{unit}/{exp}/{job}/$state              a job's state (retained)
//	pioreactor/{unit}/{exp}/{job}/{setting}           each job setting (retained)
//	pioreactor/{unit}/{exp}/od_reading/od2            OD readings (the 90° photodiode), as Pioreactor's RawODReading
//	pioreactor/{unit}/{exp}/growth_rate_calculating/growth_rate
//	pioreactor/{unit}/{exp}/temperature_automation/temperature
//	pioreactor/{unit}/{exp}/dosing_events             dosing events
//	pioreactor/{unit}/{exp}/logs/app/{level}          job logs
//
// Clients publish only commands, to pioreactor/{unit}/{exp}/{job}/{setting}/set,
// and only with the API token as their password (when the API asks for
// one): a command goes through the node's own HTTP API, as
// PATCH /api/workers/{unit}/jobs/update/job_name/{job}/experiments/{exp}.
// Subscribing needs the token only when reads of the API do (api.read_auth).
package mqtt
