// Package accounting is the relay's books: which client address is routed to which proxy
// connection and device (RouteTable, Route), what each connection has used in its usage epoch
// against its limit (Quota: lock-free counters checked in the packet path, so that no byte
// over the limit is forwarded), the connections remembered for a grace period after their
// last route goes (so that a reconnect never buys bytes), and the Reporter that delivers the
// cumulative usage to a UsageSink (the API).
//
// It does not move packets (package relay) or speak HTTP (the relay's InternalAPI is the
// sink in production).
package accounting
