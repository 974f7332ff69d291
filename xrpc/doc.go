// Package xrpc is the PDS's XRPC layer.
//
//   - Errors: handlers return *Error (NewError, InvalidRequest, AuthMissing, ...);
//     ErrorHandler (installed as echo's HTTPErrorHandler) is the one place errors
//     become HTTP responses: {"error": Name, "message": Message}. Anything that is
//     not an *Error is logged and answered with an opaque 500, so Go, SQL or
//     parser messages never reach the wire.
//   - Router: the method registry on /xrpc/:nsid. Query (GET/HEAD) and Procedure
//     (POST); a wrong verb is 400 "Incorrect HTTP method"; unregistered methods
//     go to the fallback (501 by default). Query parameters are validated against
//     the method's lexicon before the handler runs; read them with ParamString,
//     ParamInt, ParamBool, ParamStrings.
//   - Bodies: ReadJSON / ReadRawJSON enforce Content-Type, size limits, UTF-8,
//     one JSON object, the data-model number rules, and the method's lexicon
//     input schema.
//   - Records: ParseRecord enforces the AT data model and builds DAG-CBOR + CID;
//     ValidateRecord applies the validate=auto/true/false semantics with the
//     lexicon catalog; CheckRecordKey checks the record-key type.
//   - Syntax: ParseNSID, ParseRecordKey, ParseTID are indigo's
//     syntax.ParseX (same results, same errors) with a hand-written check in
//     front, so valid input costs no regexp; parameter validation uses the
//     same checks before falling back to indigo's SchemaString.Validate.
//   - Auth header helpers: BearerToken, DPoPToken, BasicAuth.
package xrpc
