package agent

import (
	"context"
	"net/http"
)

// Call sends in as JSON to the cellgate API at base and decodes a 2xx answer into out (when
// not nil); any other answer is an *APIError. It is the device API client's transport, for the
// other clients of the same API (the operator client of internal/fleet), so that one piece of
// code reads the API's errors.
func Call(ctx context.Context, hc *http.Client, base, method, path string, header http.Header, in, out any) error {
	return call(ctx, hc, base, method, path, header, in, out)
}
