package otlp

import (
	"encoding/binary"
	"encoding/json"
	"net/http"
)

// gRPC status codes used in google.rpc.Status bodies.
const (
	codeInvalidArgument   = 3
	codePermissionDenied  = 7
	codeResourceExhausted = 8
	codeUnimplemented     = 12
	codeInternal          = 13
	codeUnavailable       = 14
	codeUnauthenticated   = 16
)

// grpcCode maps an HTTP status to the gRPC code of the Status body, as
// gRPC-gateway maps them.
func grpcCode(status int) int32 {
	switch status {
	case http.StatusBadRequest, http.StatusUnsupportedMediaType:
		return codeInvalidArgument
	case http.StatusUnauthorized:
		return codeUnauthenticated
	case http.StatusForbidden:
		return codePermissionDenied
	case http.StatusRequestEntityTooLarge:
		return codeResourceExhausted
	case http.StatusMethodNotAllowed:
		return codeUnimplemented
	case http.StatusServiceUnavailable:
		return codeUnavailable
	}
	return codeInternal
}

// encodeStatus encodes a google.rpc.Status{code, message}, the body
// OTLP/HTTP prescribes for failures, as protobuf or JSON.
func encodeStatus(f Format, code int32, msg string) []byte {
	if f == JSON {
		b, _ := json.Marshal(struct {
			Code    int32  `json:"code"`
			Message string `json:"message"`
		}{code, msg})
		return b
	}
	b := make([]byte, 0, len(msg)+16)
	if code != 0 {
		b = append(b, 0x08) // field 1, varint
		b = binary.AppendUvarint(b, uint64(uint32(code)))
	}
	if msg != "" {
		b = append(b, 0x12) // field 2, length-delimited
		b = binary.AppendUvarint(b, uint64(len(msg)))
		b = append(b, msg...)
	}
	return b
}
