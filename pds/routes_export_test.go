package pds

import "github.com/pdsgo/pds/xrpc"

// XRPCMethodsForTest lists the route table's XRPC methods with their middleware.
func XRPCMethodsForTest(s *Server) []xrpc.MethodInfo { return s.router.Methods() }
