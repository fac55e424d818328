package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"go.temporal.io/api/serviceerror"

	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/workflows"
)

// Page sizes of list endpoints.
const (
	DefaultPageSize = 100
	MaxPageSize     = 500
)

// pageLimit parses ?limit= of a newest-first listing, which pages with ?before=.
func pageLimit(c *gin.Context) (int, error) {
	if _, ok := c.GetQuery("after"); ok {
		return 0, badRequest("after", "invalid", "this list is newest first: page it with before")
	}
	return limit(c)
}

func limit(c *gin.Context) (int, error) {
	v, ok := c.GetQuery("limit")
	if !ok {
		return DefaultPageSize, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxPageSize {
		return 0, badRequest("limit", "invalid", "limit must be an integer from 1 to %d", MaxPageSize)
	}
	return n, nil
}

// page parses ?limit= and ?after= (the last id of the previous page).
func page(c *gin.Context) (store.Page, error) {
	var p store.Page
	var err error
	if p.Limit, err = limit(c); err != nil {
		return p, err
	}
	if v, ok := c.GetQuery("after"); ok {
		id, err := uuid.Parse(v)
		if err != nil {
			return p, badRequest("after", "invalid", "after must be an id from the previous page")
		}
		p.After = id
	}
	return p, nil
}

// nextAfter returns the cursor of the page after one of n rows whose last id is last, or nil.
func nextAfter(p store.Page, n int, last uuid.UUID) *uuid.UUID {
	if n < p.Limit {
		return nil
	}
	return &last
}

// POST /api/v1/devices {"name"}: a device and its single-use enrollment token (shown once).
func (s *Server) createDevice(c *gin.Context) error {
	name, err := decodeName(c)
	if err != nil {
		return err
	}
	token, hash := credential.NewToken(credential.EnrollmentPrefix)
	d, err := s.store.CreateDevice(c.Request.Context(), principal(c).OperatorID, name, hash)
	if err != nil {
		return err
	}
	c.JSON(http.StatusCreated, gin.H{"device": d, "enrollment_token": token})
	return nil
}

// GET /api/v1/devices?limit=&after=
func (s *Server) listDevices(c *gin.Context) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	devices, err := s.store.Devices(c.Request.Context(), principal(c).OperatorID, p)
	if err != nil {
		return err
	}
	var next *uuid.UUID
	if len(devices) > 0 {
		next = nextAfter(p, len(devices), devices[len(devices)-1].ID)
	} else {
		devices = []store.Device{}
	}
	c.JSON(http.StatusOK, gin.H{"devices": devices, "next_after": next})
	return nil
}

// GET /api/v1/devices/{id}: the device, the link to its DeviceMonitor in the Temporal Web UI
// and whether it has a tunnel session on the relay.
func (s *Server) getDevice(c *gin.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	ctx := c.Request.Context()
	d, err := s.store.Device(ctx, principal(c).OperatorID, id)
	if err != nil {
		return err
	}
	monitor := workflows.DeviceMonitorID(d.ID)
	out := deviceJSON{Device: d, MonitorWorkflowID: monitor}
	if d.LastHeartbeatAt != nil { // the first heartbeat starts the monitor: no dead link before
		out.MonitorWorkflowURL = s.workflowURL(monitor)
	}
	if sessions := s.ovpn.sessions; sessions != nil {
		lctx, cancel := context.WithTimeout(ctx, liveTimeout)
		live, err := sessions.DeviceLive(lctx, d.ID)
		cancel()
		if err == nil {
			out.TunnelLive = &live
		} else {
			s.log.WarnContext(ctx, "device tunnel session not checked", "device_id", d.ID, "err", err)
		}
	}
	c.JSON(http.StatusOK, gin.H{"device": out})
	return nil
}

// liveTimeout bounds asking the relay whether a device has a tunnel session.
const liveTimeout = 2 * time.Second

// deviceJSON is a device as GET /api/v1/devices/{id} shows it: with the workflow ID and Web UI
// link of its DeviceMonitor and, when a relay is configured, whether the device has a tunnel
// session.
type deviceJSON struct {
	store.Device
	// MonitorWorkflowID is for the Temporal CLI, and for the dashboard without a Web UI link:
	// the ID's format stays in package workflows.
	MonitorWorkflowID  string `json:"monitor_workflow_id"`
	MonitorWorkflowURL string `json:"monitor_workflow_url,omitempty"`
	// TunnelLive is absent when there is no relay to ask (or it did not answer).
	TunnelLive *bool `json:"tunnel_live,omitempty"`
}

// PATCH /api/v1/devices/{id} {"name"}
func (s *Server) updateDevice(c *gin.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	name, err := decodeName(c)
	if err != nil {
		return err
	}
	d, err := s.store.RenameDevice(c.Request.Context(), principal(c).OperatorID, id, name)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"device": d})
	return nil
}

// DELETE /api/v1/devices/{id}: 409 while connections still use the device.
func (s *Server) deleteDevice(c *gin.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	ctx := c.Request.Context()
	if err := s.store.DeleteDevice(ctx, principal(c).OperatorID, id); err != nil {
		return err
	}
	// End the device's monitor. When this fails (no monitor yet, Temporal away) the monitor
	// still ends on its own: its next status write finds the device gone.
	sctx, cancel := context.WithTimeout(ctx, signalTimeout)
	defer cancel()
	if err := s.temporal.SignalWorkflow(sctx, workflows.DeviceMonitorID(id), "", workflows.DeviceDeletedSignal, nil); err != nil {
		var notFound *serviceerror.NotFound
		if !errors.As(err, &notFound) {
			s.log.WarnContext(ctx, "device monitor not told of deletion", "device_id", id, "err", err)
		}
	}
	c.Status(http.StatusNoContent)
	return nil
}

// GET /api/v1/devices/{id}/events?limit=&before=: status transitions, newest first.
func (s *Server) deviceEvents(c *gin.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	var before int64
	if v, ok := c.GetQuery("before"); ok {
		if before, err = strconv.ParseInt(v, 10, 64); err != nil || before < 1 {
			return badRequest("before", "invalid", "before must be an event id from the previous page")
		}
	}
	events, err := s.store.DeviceStatusEvents(c.Request.Context(), principal(c).OperatorID, id, before, limit)
	if err != nil {
		return err
	}
	var next *int64
	if len(events) == limit {
		next = &events[len(events)-1].ID
	}
	if events == nil {
		events = []store.StatusEvent{}
	}
	c.JSON(http.StatusOK, gin.H{"events": events, "next_before": next})
	return nil
}
