package lockcheck

import (
	"cmp"
	"fmt"
	"go/ast"
	"go/token"
	"go/types"
	"maps"
	"slices"
	"strings"

	"golang.org/x/tools/go/analysis"
	"golang.org/x/tools/go/analysis/passes/ctrlflow"
	"golang.org/x/tools/go/analysis/passes/inspect"
	"golang.org/x/tools/go/ast/inspector"
	"golang.org/x/tools/go/cfg"
	"golang.org/x/tools/go/types/typeutil"
)

// Analyzer reports locks of package locked that a function leaks,
// discards or never uses, second proofs of an entity type taken while one
// is open, and proofs copied by value. See the package documentation for
// the rules.
var Analyzer = &analysis.Analyzer{
	Name:      "lockcheck",
	Doc:       "report leaked, discarded and nested lockproof locks\n\nSee https://pkg.go.dev/github.com/lockproof/lockproof/lockcheck for the rules.",
	URL:       "https://pkg.go.dev/github.com/lockproof/lockproof/lockcheck",
	Run:       run,
	Requires:  []*analysis.Analyzer{inspect.Analyzer, ctrlflow.Analyzer},
	FactTypes: []analysis.Fact{new(ownership)},
}

type checker struct {
	pass        *analysis.Pass
	parent      map[ast.Node]ast.Node
	decls       map[*types.Func]*ast.FuncDecl
	ignore      map[string]bool             // "file:line" of //lockcheck:ignore comments and the lines after them
	lits        map[*types.Var]*ast.FuncLit // local functions: f := func(…) {…}
	ownsMemo    map[*types.Func][]bool
	managedMemo map[*types.Func][]bool
}

// tracked is a lock held in a local variable of the function being checked.
type tracked struct {
	v      *types.Var
	def    ast.Node // the AssignStmt or ValueSpec, a node of the CFG
	lhs    *ast.Ident
	call   *ast.CallExpr
	typ    types.Type
	errVar *types.Var // the error result of the same call, if kept
	named  bool       // v is a named result
	// discard marks `_, err := acquire()`: v is nil, and the lock is
	// reported unless err is inspected on every path (a call made to fail).
	discard bool
}

func run(pass *analysis.Pass) (any, error) {
	c := &checker{
		pass:        pass,
		parent:      make(map[ast.Node]ast.Node),
		decls:       make(map[*types.Func]*ast.FuncDecl),
		ignore:      make(map[string]bool),
		lits:        make(map[*types.Var]*ast.FuncLit),
		ownsMemo:    make(map[*types.Func][]bool),
		managedMemo: make(map[*types.Func][]bool),
	}
	ins := pass.ResultOf[inspect.Analyzer].(*inspector.Inspector)
	for _, f := range pass.Files {
		for _, g := range f.Comments {
			for _, cm := range g.List {
				if strings.HasPrefix(cm.Text, "//lockcheck:ignore") {
					p := pass.Fset.Position(cm.Pos())
					c.ignore[fmt.Sprintf("%s:%d", p.Filename, p.Line)] = true
					c.ignore[fmt.Sprintf("%s:%d", p.Filename, p.Line+1)] = true
				}
			}
		}
	}
	for cur := range ins.Root().Preorder((*ast.File)(nil)) {
		var stack []ast.Node
		ast.Inspect(cur.Node(), func(n ast.Node) bool {
			if n == nil {
				stack = stack[:len(stack)-1]
				return true
			}
			if len(stack) > 0 {
				c.parent[n] = stack[len(stack)-1]
			}
			stack = append(stack, n)
			switch d := n.(type) {
			case *ast.FuncDecl:
				if fn, ok := pass.TypesInfo.Defs[d.Name].(*types.Func); ok {
					c.decls[fn] = d
				}
			case *ast.AssignStmt: // f := func(…) … { … }
				if len(d.Lhs) == 1 && len(d.Rhs) == 1 {
					lit, ok := d.Rhs[0].(*ast.FuncLit)
					id, _ := d.Lhs[0].(*ast.Ident)
					if v, isVar := pass.TypesInfo.Defs[id].(*types.Var); ok && id != nil && isVar {
						c.lits[v] = lit
					}
				}
			}
			return true
		})
	}

	// Facts first: they are needed by every package that calls these.
	// (In source order, so that recursive functions come out the same
	// every run.)
	fns := slices.Collect(maps.Keys(c.decls))
	slices.SortFunc(fns, func(a, b *types.Func) int { return cmp.Compare(a.Pos(), b.Pos()) })
	for _, fn := range fns {
		owns, managed := c.owns(fn), c.managed(fn)
		if fn.Exported() && (owns != nil || managed != nil) {
			pass.ExportObjectFact(fn, &ownership{Owns: owns, Managed: managed})
		}
	}

	cfgs := pass.ResultOf[ctrlflow.Analyzer].(*ctrlflow.CFGs)
	for cur := range ins.Root().Preorder((*ast.FuncDecl)(nil), (*ast.FuncLit)(nil), (*ast.StarExpr)(nil)) {
		n := cur.Node()
		if pass.Pkg.Path() == lockedPath && !strings.HasSuffix(pass.Fset.File(n.Pos()).Name(), "_test.go") {
			continue // package locked mints and ends locks itself
		}
		switch n := n.(type) {
		case *ast.FuncDecl:
			if n.Body != nil {
				sig, _ := pass.TypesInfo.Defs[n.Name].Type().(*types.Signature)
				c.checkFunc(n.Body, cfgs.FuncDecl(n), sig)
			}
		case *ast.FuncLit:
			sig, _ := pass.TypesInfo.TypeOf(n).(*types.Signature)
			c.checkFunc(n.Body, cfgs.FuncLit(n), sig)
		case *ast.StarExpr:
			c.checkCopy(n)
		}
	}
	return nil, nil
}

// checkCopy reports *l where l is a *locked.Locked[T] and the value is copied.
func (c *checker) checkCopy(star *ast.StarExpr) {
	info := c.pass.TypesInfo
	if tv, ok := info.Types[star]; !ok || !tv.IsValue() {
		return
	}
	n := lockNamed(info.TypeOf(star.X))
	if n == nil || n.Origin().Obj().Name() != "Locked" {
		return
	}
	if _, ok := types.Unalias(info.TypeOf(star.X)).(*types.Pointer); !ok {
		return
	}
	switch p := c.parent[star].(type) {
	case *ast.SelectorExpr: // (*l).Close(): no copy
		return
	case *ast.ParenExpr:
		if _, ok := c.parent[p].(*ast.SelectorExpr); ok {
			return
		}
	case *ast.UnaryExpr:
		if p.Op == token.AND {
			return
		}
	}
	c.report(star, "%s copies a %s by value: a copy is not a second lock; pass the pointer", types.ExprString(star), typeString(info.TypeOf(star)))
}

func (c *checker) checkFunc(body *ast.BlockStmt, g *cfg.CFG, sig *types.Signature) {
	if g == nil || sig == nil {
		return
	}
	nodeOf := make(map[ast.Node]ast.Node) // ident or call -> CFG node containing it
	inLit := make(map[ast.Node]bool)      // call inside a nested function literal
	where := make(map[ast.Node]*cfg.Block)
	index := make(map[ast.Node]int)
	for _, b := range g.Blocks {
		for i, n := range b.Nodes {
			where[n], index[n] = b, i
			ast.Inspect(n, func(m ast.Node) bool {
				if m == nil {
					return true
				}
				switch m := m.(type) {
				case *ast.Ident, *ast.CallExpr:
					nodeOf[m] = n
					for p := c.parent[m]; p != nil && p != n; p = c.parent[p] {
						if _, ok := p.(*ast.FuncLit); ok {
							inLit[m] = true
							break
						}
					}
				}
				return true
			})
		}
	}

	// The calls of this function (not of its function literals) that
	// return locks, by CFG node, in source order.
	var calls []*ast.CallExpr
	for m := range nodeOf {
		if call, ok := m.(*ast.CallExpr); ok && !inLit[call] && len(c.source(call)) > 0 {
			calls = append(calls, call)
		}
	}
	slices.SortFunc(calls, func(a, b *ast.CallExpr) int { return cmp.Compare(a.Pos(), b.Pos()) })
	sources := make(map[ast.Node][]*ast.CallExpr)
	var locks []*tracked
	for _, call := range calls {
		n := nodeOf[call]
		sources[n] = append(sources[n], call)
		locks = append(locks, c.bind(call, c.source(call), n, body, sig)...)
	}

	probes := make(map[*ast.CallExpr]bool)
	for _, t := range locks {
		probes[t.call] = t.discard
	}
	for _, t := range locks {
		c.checkLock(t, where, index, nodeOf, sources, probes)
	}
}

// bind finds where the lock results of call go. Discarded ones are
// reported; those kept in local variables are returned for tracking.
func (c *checker) bind(call *ast.CallExpr, idx []int, node ast.Node, body *ast.BlockStmt, sig *types.Signature) []*tracked {
	info := c.pass.TypesInfo
	for _, a := range call.Args {
		if opt, ok := ast.Unparen(a).(*ast.CallExpr); ok {
			if fn, ok := typeutil.Callee(info, opt).(*types.Func); ok && fn.Name() == "WithOwner" && fn.Pkg() != nil && fn.Pkg().Path() == lockedPath {
				return nil // an owner's lock is released by owner (Service.Release, ReleaseOwner), not only by its handle
			}
		}
	}
	var lhs []ast.Expr
	var rhs []ast.Expr
	var e ast.Node = call
	for {
		p, ok := c.parent[e].(*ast.ParenExpr)
		if !ok {
			break
		}
		e = p
	}
	switch p := c.parent[e].(type) {
	case *ast.ExprStmt, *ast.GoStmt, *ast.DeferStmt:
		for _, i := range idx {
			c.report(call, "the %s from %s is discarded: the lock stays held until its TTL runs out", typeString(resultType(info, call, i)), callName(call))
		}
		return nil
	case *ast.AssignStmt:
		if p.Tok == token.DEFINE || p.Tok == token.ASSIGN {
			lhs, rhs = p.Lhs, p.Rhs
		}
	case *ast.ValueSpec:
		for _, n := range p.Names {
			lhs = append(lhs, n)
		}
		rhs = p.Values
	}
	if len(lhs) == 0 {
		return nil // returned, passed on, stored in a composite: handed off
	}
	pick := func(i int) ast.Expr {
		if len(rhs) == 1 && len(lhs) > 1 {
			return lhs[i]
		}
		for j, r := range rhs {
			if r == e && j < len(lhs) {
				return lhs[j]
			}
		}
		return nil
	}
	localVar := func(x ast.Expr) (*types.Var, bool) {
		id, ok := x.(*ast.Ident)
		if !ok {
			return nil, false
		}
		v, _ := info.Defs[id].(*types.Var)
		if v == nil {
			v, _ = info.Uses[id].(*types.Var)
		}
		if v == nil {
			return nil, false
		}
		for r := range sig.Results().Variables() {
			if r == v {
				return v, true
			}
		}
		return v, v.Pos() >= body.Pos() && v.Pos() < body.End()
	}
	var errVar *types.Var
	errKeptElsewhere := false
	if len(rhs) == 1 && len(lhs) > 1 {
		for i := range lhs {
			if !types.Identical(resultType(info, call, i), types.Universe.Lookup("error").Type()) {
				continue
			}
			if v, ok := localVar(lhs[i]); ok {
				errVar = v
			} else if id, ok := lhs[i].(*ast.Ident); !ok || id.Name != "_" {
				errKeptElsewhere = true
			}
		}
	}
	var out []*tracked
	for _, i := range idx {
		x := pick(i)
		if x == nil {
			continue
		}
		if id, ok := x.(*ast.Ident); ok && id.Name == "_" {
			if errKeptElsewhere {
				continue // err goes to an outer variable: inspected there
			}
			if errVar != nil {
				out = append(out, &tracked{def: node, lhs: id, call: call, typ: resultType(info, call, i), errVar: errVar, discard: true})
				continue
			}
			c.report(x, "the %s from %s is discarded: the lock stays held until its TTL runs out", typeString(resultType(info, call, i)), callName(call))
			continue
		}
		v, local := localVar(x)
		if !local {
			continue // stored in a field, element, global or outer variable
		}
		named := false
		for r := range sig.Results().Variables() {
			named = named || r == v
		}
		out = append(out, &tracked{v: v, def: node, lhs: x.(*ast.Ident), call: call, typ: resultType(info, call, i), errVar: errVar, named: named})
	}
	return out
}

// callee returns the name of the function or method call calls.
func callee(call *ast.CallExpr) string {
	switch f := ast.Unparen(call.Fun).(type) {
	case *ast.IndexExpr:
		return callee(&ast.CallExpr{Fun: f.X})
	case *ast.IndexListExpr:
		return callee(&ast.CallExpr{Fun: f.X})
	case *ast.SelectorExpr:
		return f.Sel.Name
	case *ast.Ident:
		return f.Name
	}
	return ""
}

func callName(call *ast.CallExpr) string {
	f := ast.Unparen(call.Fun)
	switch x := f.(type) {
	case *ast.IndexExpr:
		f = x.X
	case *ast.IndexListExpr:
		f = x.X
	}
	return types.ExprString(f)
}

func (c *checker) checkLock(t *tracked, where map[ast.Node]*cfg.Block, index map[ast.Node]int, nodeOf map[ast.Node]ast.Node, sources map[ast.Node][]*ast.CallExpr, probes map[*ast.CallExpr]bool) {
	info := c.pass.TypesInfo
	block, ok := where[t.def]
	if !ok {
		return
	}
	ev := make(map[ast.Node]event)
	errAssign := make(map[ast.Node]bool)
	inspected := make(map[ast.Node]bool) // nodes that pass err on or test it
	uses := 0
	for m, n := range nodeOf {
		id, ok := m.(*ast.Ident)
		if !ok || id == t.lhs {
			continue
		}
		obj := info.Uses[id]
		if obj == nil {
			continue
		}
		if obj == t.v {
			if a, ok := c.parent[id].(*ast.AssignStmt); !ok || !isBlankAssign(a, id) {
				uses++ // `_ = l` silences the compiler; it does not use l
			}
			e := c.classify(id)
			if _, ok := n.(*ast.DeferStmt); ok && e == evEnd {
				e = evDefer
			}
			ev[n] = max(ev[n], e)
		}
		if t.errVar != nil && obj == t.errVar && n != t.def {
			switch p := c.parent[id].(type) {
			case *ast.CallExpr, *ast.ReturnStmt, *ast.SendStmt:
				inspected[n] = true
			case *ast.AssignStmt:
				inspected[n] = inspected[n] || slices.Contains(p.Rhs, ast.Expr(id))
			}
			if a, ok := n.(*ast.AssignStmt); ok {
				for _, l := range a.Lhs {
					if l == id {
						errAssign[n] = true
					}
				}
			}
		}
	}
	if t.named {
		for n := range where {
			if r, ok := n.(*ast.ReturnStmt); ok && len(r.Results) == 0 {
				ev[r] = evEnd
			}
		}
	}
	if t.discard {
		msg := ""
		c.walk(t, block, index[t.def], errAssign, func(n ast.Node) (bool, bool) {
			return n == t.def || inspected[n], false
		}, func(r *ast.ReturnStmt) bool {
			msg = "the " + typeString(t.typ) + " from " + callName(t.call) + " is discarded: the lock stays held until its TTL runs out"
			return true
		})
		if msg != "" {
			c.report(t.lhs, "%s (if the call is meant to fail, check its error with errors.Is)", msg)
		}
		return
	}
	name := t.v.Name()
	what := fmt.Sprintf("%s (%s from %s)", name, typeString(t.typ), callName(t.call))
	if uses == 0 && !t.named {
		c.report(t.lhs, "%s is never used: the lock stays held until its TTL runs out", what)
		return
	}
	line := c.pass.Fset.Position(t.def.Pos()).Line

	// Leaks: a path from the acquire to a return, or back to the acquire,
	// with neither an end nor a deferred end of the lock.
	var leak string
	hint := fmt.Sprintf("defer %s.Close() after the error check", name)
	if _, ok := t.typ.Underlying().(*types.Slice); ok {
		hint = "close every element, e.g. in a deferred loop"
	}
	c.walk(t, block, index[t.def], errAssign, func(n ast.Node) (bool, bool) {
		if n == t.def {
			leak = "a loop can come back to the acquire before it is closed"
			hint = "close it before the next iteration"
			return true, true
		}
		return ev[n] >= evDefer, false
	}, func(r *ast.ReturnStmt) bool {
		line := c.pass.Fset.Position(r.Pos()).Line
		if _, real := c.parent[r]; !real {
			leak = fmt.Sprintf("the end of the function (line %d) can be reached without closing it", line)
		} else {
			leak = fmt.Sprintf("the return at line %d can be reached without closing it", line)
		}
		return true
	})
	if leak != "" {
		c.report(t.lhs, "%s is not closed on every path: %s (%s)", what, leak, hint)
	}

	// Nesting: another proof of the same entity type acquired while this
	// one is open (a deferred Close does not end it before the return).
	ent := entityOf(t.typ)
	if ent == nil {
		return
	}
	reported := make(map[*ast.CallExpr]bool)
	report := func(call *ast.CallExpr, again bool) {
		if reported[call] {
			return
		}
		reported[call] = true
		how := ""
		if again {
			how = " (in a loop, before the previous one is closed)"
		}
		c.report(call, "%s acquires a %s while %s from line %d is still open%s: a second lock of the same entity type in one function can deadlock on itself; take them together with AcquireAll or LoadAll", callName(call), typeString(ent), name, line, how)
	}
	c.walk(t, block, index[t.def], errAssign, func(n ast.Node) (bool, bool) {
		if n == t.def {
			report(t.call, true)
			return true, false
		}
		if ev[n] == evEnd {
			return true, false
		}
		for _, call := range sources[n] {
			if probes[call] || strings.HasPrefix(callee(call), "Try") {
				continue // a probe keeps nothing; a Try… call does not wait
			}
			for _, i := range c.source(call) {
				if e := entityOf(resultType(info, call, i)); e != nil && types.Identical(e, ent) {
					report(call, false)
				}
			}
		}
		return false, false
	}, func(*ast.ReturnStmt) bool { return false })
}

type walkState struct {
	b     *cfg.Block
	fresh bool
}

// walk visits the nodes on every path from the node after t.def in block,
// pruning branches on which the lock is nil (its call's error is non-nil,
// or the variable itself is nil). visit returns stop to end the path and
// abort to end the walk; atReturn is called when a path reaches a return
// and returns abort.
func (c *checker) walk(t *tracked, block *cfg.Block, i int, errAssign map[ast.Node]bool,
	visit func(ast.Node) (stop, abort bool), atReturn func(*ast.ReturnStmt) bool) {
	seen := make(map[walkState]bool)
	var from func(b *cfg.Block, i int, fresh bool) bool
	from = func(b *cfg.Block, i int, fresh bool) bool {
		for ; i < len(b.Nodes); i++ {
			n := b.Nodes[i]
			stop, abort := visit(n)
			if abort {
				return true
			}
			if stop {
				return false
			}
			if errAssign[n] {
				fresh = false
			}
		}
		if r := b.Return(); r != nil {
			return atReturn(r)
		}
		succs := b.Succs
		if len(succs) == 2 && len(b.Nodes) > 0 {
			if cond, ok := b.Nodes[len(b.Nodes)-1].(ast.Expr); ok {
				onTrue, onFalse := c.nilOn(cond, t, fresh)
				switch {
				case onTrue:
					succs = succs[1:]
				case onFalse:
					succs = succs[:1]
				}
			}
		}
		for _, s := range succs {
			st := walkState{s, fresh}
			if seen[st] {
				continue
			}
			seen[st] = true
			if from(s, 0, fresh) {
				return true
			}
		}
		return false
	}
	from(block, i+1, true)
}

// nilOn reports whether the lock of t is nil when cond is true and when it
// is false: `err != nil`, `errors.Is(err, …)`, `errors.As(err, …)` for the
// acquire's own error (until it is reassigned), `l == nil`, and their
// combinations with !, && and ||.
func (c *checker) nilOn(cond ast.Expr, t *tracked, fresh bool) (onTrue, onFalse bool) {
	info := c.pass.TypesInfo
	is := func(x ast.Expr, v *types.Var) bool {
		id, ok := ast.Unparen(x).(*ast.Ident)
		return ok && v != nil && info.Uses[id] == v
	}
	isNil := func(x ast.Expr) bool {
		tv, ok := info.Types[x]
		return ok && tv.IsNil()
	}
	errV := t.errVar
	if !fresh {
		errV = nil
	}
	if cc, ok := c.parent[cond].(*ast.CaseClause); ok && isNil(cond) {
		// switch err { case nil: … }: the case is err == nil.
		if sw, ok := c.parent[c.parent[cc]].(*ast.SwitchStmt); ok && sw.Tag != nil {
			if is(sw.Tag, errV) {
				return false, true
			}
			if is(sw.Tag, t.v) {
				return true, false
			}
		}
	}
	switch x := ast.Unparen(cond).(type) {
	case *ast.UnaryExpr:
		if x.Op == token.NOT {
			t, f := c.nilOn(x.X, t, fresh)
			return f, t
		}
	case *ast.BinaryExpr:
		switch x.Op {
		case token.LAND:
			lt, lf := c.nilOn(x.X, t, fresh)
			rt, rf := c.nilOn(x.Y, t, fresh)
			return lt || rt, lf && rf
		case token.LOR:
			lt, lf := c.nilOn(x.X, t, fresh)
			rt, rf := c.nilOn(x.Y, t, fresh)
			return lt && rt, lf || rf
		case token.NEQ, token.EQL:
			a, b := x.X, x.Y
			if isNil(a) {
				a, b = b, a
			}
			if !isNil(b) {
				return false, false
			}
			if is(a, errV) { // err != nil: the lock is nil
				return x.Op == token.NEQ, x.Op == token.EQL
			}
			if is(a, t.v) { // l == nil
				return x.Op == token.EQL, x.Op == token.NEQ
			}
		}
	case *ast.CallExpr:
		fn, ok := typeutil.Callee(info, x).(*types.Func)
		if !ok || fn.Pkg() == nil || !slices.ContainsFunc(x.Args, func(a ast.Expr) bool { return is(a, errV) }) {
			return false, false
		}
		switch {
		case fn.Pkg().Path() == "errors" && (fn.Name() == "Is" || fn.Name() == "As"):
			return true, false
		case fn.Name() == "NoError" || fn.Name() == "Nil": // testify: true when err is nil
			return false, true
		case fn.Name() == "Error" || fn.Name() == "ErrorIs" || fn.Name() == "ErrorAs" || fn.Name() == "ErrorContains" || fn.Name() == "NotNil":
			return true, false
		}
	}
	return false, false
}

// isBlankAssign reports whether a assigns x to the blank identifier.
func isBlankAssign(a *ast.AssignStmt, x ast.Expr) bool {
	for i, r := range a.Rhs {
		if r == x && len(a.Lhs) == len(a.Rhs) {
			id, ok := a.Lhs[i].(*ast.Ident)
			return ok && id.Name == "_"
		}
	}
	return false
}

// report reports a diagnostic unless a //lockcheck:ignore comment is on its
// line or the line before.
func (c *checker) report(rng analysis.Range, format string, args ...any) {
	p := c.pass.Fset.Position(rng.Pos())
	if c.ignore[fmt.Sprintf("%s:%d", p.Filename, p.Line)] {
		return
	}
	c.pass.ReportRangef(rng, format, args...)
}
