// Package discovery finds pio nodes on the lab's network that are not in a
// cluster yet, so that "Add new Pioreactor" can offer them, as Pioreactor's
// leader does with its workers' `.local` names.
//
// Every node advertises Pioreactor's mDNS service, _pio-worker._tcp (the
// one Pioreactor's workers announce through avahi), with its unit name as the
// SRV target (NAME.local), its API's address and port, and TXT records that
// say what a node is and nothing that lets anyone in:
//
//	app=pio unit=NAME version=V model=M worker=1 standalone=1 fresh=1
//
// standalone says the node is a cluster of one; fresh that it would accept
// an invitation (standalone, and holding nothing but its own registration).
// No token, key, node ID or cluster ID is ever advertised.
//
// The records are made by hashicorp/mdns (its MDNSService zone) and a browse
// is its client (QueryContext). The responder's socket is this package's
// own: it shares UDP port 5353 with avahi-daemon (SO_REUSEADDR and
// SO_REUSEPORT, as avahi sets them), joins the group on every interface that
// has an IPv4 address, and reports a port it cannot share as ErrListen, so
// that the node starts without mDNS instead of failing.
package discovery
