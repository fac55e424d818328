// Package netio is the device tunnel's I/O with the host: batched UDP (recvmmsg and sendmmsg,
// with UDP GSO and GRO where the kernel has them: BatchIO, Datagrams, Outbox), the TUN device
// (TUN, OpenTUN, TUNBatch; tuntest is its in-memory fake), and the kernel settings made around
// a TUN and undone at exit (KernelSetup, IP). Both ends use it: the relay (package
// relay) and the device (package uplink).
//
// It knows nothing of sessions, peers or routes: it moves buffers. Which packets go where,
// and the relay's own routing rules, are the relay's and the device's.
package netio
