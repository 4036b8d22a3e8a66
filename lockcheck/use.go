package lockcheck

import (
	"go/ast"
	"go/token"
	"go/types"
	"strings"

	"golang.org/x/tools/go/types/typeutil"
)

// event is what one reference to a tracked lock does to it.
type event int

const (
	evNone  event = iota
	evUse         // reads it and leaves it open: Entity, Key, Check, a borrowing call
	evDefer       // a deferred end: closes it when the function returns
	evEnd         // ends this function's ownership: closed, released, detached or handed off
)

// ownership is the fact exported for a function with lock-typed
// parameters or results: Owns[i] reports whether parameter i is taken over
// (closed, stored, returned, or handed on) rather than borrowed; Managed[i]
// reports whether the lock returned as result i already has its end
// arranged by the function (the test helper's
// `t.Cleanup(func() { l.Close() }); return l`), so callers need not end it.
type ownership struct{ Owns, Managed []bool }

func (*ownership) AFact() {}

func (f *ownership) String() string {
	return "owns(" + bits(f.Owns) + ") managed(" + bits(f.Managed) + ")"
}

func bits(bs []bool) string {
	var b strings.Builder
	for _, x := range bs {
		if x {
			b.WriteByte('1')
		} else {
			b.WriteByte('0')
		}
	}
	return b.String()
}

// classify tells what the expression e, a tracked lock or a value derived
// from it (an element of a slice of them, a view such as l.Lease()), does
// to the lock where it occurs.
func (c *checker) classify(e ast.Expr) event {
	switch p := c.parent[e].(type) {
	case *ast.ParenExpr:
		return c.classify(p)
	case *ast.SelectorExpr:
		fn := lockMethod(c.pass.TypesInfo, p)
		if p.X != e || fn == nil {
			return evUse
		}
		if isCloser(fn.Name()) {
			return evEnd // a call, or a method value handed to someone to call
		}
		if call, ok := c.parent[p].(*ast.CallExpr); ok && call.Fun == p && isLock(c.pass.TypesInfo.TypeOf(call)) {
			return c.classify(call) // a view of the same lock
		}
		return evUse
	case *ast.IndexExpr:
		if p.X == e {
			return c.classify(p)
		}
		return evUse
	case *ast.SliceExpr:
		if p.X == e {
			return c.classify(p)
		}
		return evUse
	case *ast.CallExpr:
		if p.Fun == e {
			return evUse
		}
		return c.argEvent(p, e)
	case *ast.ReturnStmt, *ast.CompositeLit:
		return evEnd
	case *ast.KeyValueExpr:
		return evEnd // a field, element or map key of a composite literal
	case *ast.SendStmt:
		if p.Value == e {
			return evEnd
		}
	case *ast.UnaryExpr:
		if p.Op == token.AND {
			return evEnd
		}
	case *ast.AssignStmt:
		for i, r := range p.Rhs {
			if r != e {
				continue
			}
			if len(p.Lhs) == len(p.Rhs) {
				if id, ok := p.Lhs[i].(*ast.Ident); ok && id.Name == "_" {
					return evUse
				}
			}
			return evEnd // stored in a variable, field, element or global
		}
	case *ast.ValueSpec:
		for _, v := range p.Values {
			if v == e {
				return evEnd
			}
		}
	case *ast.RangeStmt:
		if p.X == e {
			return c.rangeEvent(p)
		}
	}
	return evUse
}

// rangeEvent classifies `for _, l := range ls`: it ends ls if its body ends l.
func (c *checker) rangeEvent(r *ast.RangeStmt) event {
	id, ok := r.Value.(*ast.Ident)
	if !ok {
		return evUse
	}
	v, _ := c.pass.TypesInfo.Defs[id].(*types.Var)
	if v == nil {
		v, _ = c.pass.TypesInfo.Uses[id].(*types.Var)
	}
	if v == nil {
		return evUse
	}
	ev := evUse
	ast.Inspect(r.Body, func(n ast.Node) bool {
		if u, ok := n.(*ast.Ident); ok && c.pass.TypesInfo.Uses[u] == v {
			ev = max(ev, c.classify(u))
		}
		return true
	})
	return ev
}

// argEvent classifies passing e as an argument of call.
func (c *checker) argEvent(call *ast.CallExpr, e ast.Expr) event {
	info := c.pass.TypesInfo
	tv := info.Types[call.Fun]
	if tv.IsType() {
		return evEnd // converted: no longer followed
	}
	if tv.IsBuiltin() {
		if id, ok := ast.Unparen(call.Fun).(*ast.Ident); ok && (id.Name == "len" || id.Name == "cap") {
			return evUse
		}
		return evEnd // append and friends: now in another value
	}
	fn, _ := typeutil.Callee(info, call).(*types.Func)
	if fn == nil {
		return evEnd // a function value: assume it takes over
	}
	if sel, ok := ast.Unparen(call.Fun).(*ast.SelectorExpr); ok {
		if s := info.Selections[sel]; s != nil && s.Kind() == types.MethodExpr {
			return evEnd
		}
	}
	sig := fn.Origin().Signature()
	if r := sig.Recv(); r != nil && types.IsInterface(r.Type()) {
		// An interface method has no body to look at. The lockproof
		// module's interfaces (repository.Repository's Save and Delete)
		// borrow the proof; others are assumed to take it over.
		if inModule(fn.Pkg()) {
			return evUse
		}
		return evEnd
	}
	i := argIndex(call, e, sig)
	owns := c.owns(fn.Origin())
	if i < 0 || i >= len(owns) {
		return evEnd // not a lock-typed parameter, or unknown: assume a hand-off
	}
	if owns[i] {
		return evEnd
	}
	return evUse
}

// argIndex returns the parameter index that argument e of call binds to.
func argIndex(call *ast.CallExpr, e ast.Expr, sig *types.Signature) int {
	for j, a := range call.Args {
		if a != e {
			continue
		}
		n := sig.Params().Len()
		if sig.Variadic() && j >= n-1 {
			return n - 1
		}
		return j
	}
	return -1
}

// owns returns, per parameter of fn, whether fn takes over a lock passed
// there; nil if that is not known. Functions of the package being analyzed
// are looked at directly (memoised; recursion counts as unknown), others
// through the facts their package exported.
func (c *checker) owns(fn *types.Func) []bool {
	if o, ok := c.ownsMemo[fn]; ok {
		return o
	}
	if fn.Pkg() != c.pass.Pkg {
		var f ownership
		if c.pass.ImportObjectFact(fn, &f) {
			return f.Owns
		}
		return nil
	}
	decl := c.decls[fn]
	if decl == nil || decl.Body == nil {
		return nil
	}
	c.ownsMemo[fn] = nil // in progress: a recursive call is unknown
	sig := fn.Signature()
	owns := make([]bool, sig.Params().Len())
	hasLock := false
	for i := range sig.Params().Len() {
		p := sig.Params().At(i)
		t := p.Type()
		if sig.Variadic() && i == sig.Params().Len()-1 {
			t = t.(*types.Slice).Elem()
		}
		if !isLock(t) {
			owns[i] = true // not a lock parameter: passing one here is a hand-off
			continue
		}
		hasLock = true
		ast.Inspect(decl.Body, func(n ast.Node) bool {
			if u, ok := n.(*ast.Ident); ok && c.pass.TypesInfo.Uses[u] == p && c.classify(u) == evEnd {
				owns[i] = true
			}
			return !owns[i]
		})
	}
	if !hasLock {
		owns = nil
	}
	c.ownsMemo[fn] = owns
	return owns
}

// managed returns, per result of fn, whether fn has arranged the end of
// the lock it returns there: every non-nil value it returns is a local
// variable that a function literal (or a method value such as l.Close,
// handed to t.Cleanup) closes or takes over. nil if unknown.
func (c *checker) managed(fn *types.Func) []bool {
	if m, ok := c.managedMemo[fn]; ok {
		return m
	}
	if fn.Pkg() != c.pass.Pkg {
		var f ownership
		if c.pass.ImportObjectFact(fn, &f) {
			return f.Managed
		}
		return nil
	}
	decl := c.decls[fn]
	if decl == nil || decl.Body == nil {
		return nil
	}
	c.managedMemo[fn] = nil
	res := fn.Signature().Results()
	var out []bool
	for i := range res.Len() {
		if !isLock(res.At(i).Type()) {
			continue
		}
		if out == nil {
			out = make([]bool, res.Len())
		}
		out[i] = c.returnsManaged(decl.Body, i, res.Len())
	}
	c.managedMemo[fn] = out
	return out
}

// litManaged is managed for a local function f := func(…) {…}.
func (c *checker) litManaged(lit *ast.FuncLit, sig *types.Signature) []bool {
	res := sig.Results()
	out := make([]bool, res.Len())
	for i := range res.Len() {
		out[i] = isLock(res.At(i).Type()) && c.returnsManaged(lit.Body, i, res.Len())
	}
	return out
}

func (c *checker) returnsManaged(body *ast.BlockStmt, i, n int) bool {
	info := c.pass.TypesInfo
	ok, seen := true, false
	ast.Inspect(body, func(x ast.Node) bool {
		switch x := x.(type) {
		case *ast.FuncLit:
			return false
		case *ast.ReturnStmt:
			if len(x.Results) != n {
				ok = false
				return false
			}
			r := ast.Unparen(x.Results[i])
			if tv, isNil := info.Types[r]; isNil && tv.IsNil() {
				return false
			}
			id, isID := r.(*ast.Ident)
			v, _ := info.Uses[id].(*types.Var)
			if !isID || v == nil || !c.endedLater(body, v) {
				ok = false
			}
			seen = true
		}
		return true
	})
	return ok && seen
}

// endedLater reports whether v, a local variable of body, is closed or
// taken over inside a function literal of body, or handed on as the
// method value v.Close.
func (c *checker) endedLater(body *ast.BlockStmt, v *types.Var) bool {
	found := false
	var lits int
	var walk func(ast.Node) bool
	walk = func(x ast.Node) bool {
		if found {
			return false
		}
		switch x := x.(type) {
		case *ast.FuncLit:
			lits++
			ast.Inspect(x.Body, walk)
			lits--
			return false
		case *ast.Ident:
			if c.pass.TypesInfo.Uses[x] != v {
				return true
			}
			if lits > 0 && c.classify(x) == evEnd {
				found = true
			}
			if sel, ok := c.parent[x].(*ast.SelectorExpr); ok && isCloser(sel.Sel.Name) {
				if call, ok := c.parent[sel].(*ast.CallExpr); !ok || call.Fun != sel {
					found = true
				}
			}
		}
		return true
	}
	ast.Inspect(body, walk)
	return found
}
