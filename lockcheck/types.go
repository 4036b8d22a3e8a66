package lockcheck

import (
	"go/ast"
	"go/types"
	"strings"

	"golang.org/x/tools/go/types/typeutil"
)

const (
	lockedPath = "github.com/lockproof/lockproof/locked"
	modulePath = "github.com/lockproof/lockproof"
)

// lockNamed returns the named type behind t (through one pointer) if it is
// a lock type: declared in package locked, with a Close or Release method
// and without an Acquire method. A type with Acquire (Service, a Mutex
// handle) takes locks rather than being one.
func lockNamed(t types.Type) *types.Named {
	if p, ok := types.Unalias(t).(*types.Pointer); ok {
		t = p.Elem()
	}
	n, ok := types.Unalias(t).(*types.Named)
	if !ok {
		return nil
	}
	obj := n.Origin().Obj()
	if obj.Pkg() == nil || obj.Pkg().Path() != lockedPath {
		return nil
	}
	ms := types.NewMethodSet(types.NewPointer(n.Origin()))
	if ms.Lookup(obj.Pkg(), "Acquire") != nil {
		return nil
	}
	for _, name := range []string{"Close", "Release"} {
		if ms.Lookup(obj.Pkg(), name) != nil {
			return n
		}
	}
	return nil
}

// isLock reports whether t is a lock type or a slice of them.
func isLock(t types.Type) bool {
	if t == nil {
		return false
	}
	if s, ok := t.Underlying().(*types.Slice); ok && lockNamed(t) == nil {
		return lockNamed(s.Elem()) != nil
	}
	return lockNamed(t) != nil
}

// entityOf returns E for *locked.Locked[E] and []*locked.Locked[E], else nil.
func entityOf(t types.Type) types.Type {
	if s, ok := t.Underlying().(*types.Slice); ok && lockNamed(t) == nil {
		t = s.Elem()
	}
	n := lockNamed(t)
	if n == nil || n.Origin().Obj().Name() != "Locked" || n.TypeArgs().Len() != 1 {
		return nil
	}
	return n.TypeArgs().At(0)
}

// typeString names t for messages, qualified by package name.
func typeString(t types.Type) string {
	return types.TypeString(t, func(p *types.Package) string { return p.Name() })
}

// isCloser reports whether name is a method that ends a lock.
func isCloser(name string) bool {
	return name == "Close" || name == "Release" || name == "Detach"
}

// lockMethod returns the method of a lock type that call invokes, if any.
func lockMethod(info *types.Info, sel *ast.SelectorExpr) *types.Func {
	s := info.Selections[sel]
	if s == nil || s.Kind() == types.FieldVal {
		return nil
	}
	if !isLock(s.Recv()) {
		return nil
	}
	fn, _ := s.Obj().(*types.Func)
	return fn
}

// source reports which results of call hand the caller a lock it must end:
// the indices of lock-typed results in the callee's declared signature.
// Calls of methods of lock types (accessors such as Locked.Lease),
// conversions, and results the callee has already arranged to end (see
// managed) are not sources.
func (c *checker) source(call *ast.CallExpr) []int {
	info := c.pass.TypesInfo
	tv, ok := info.Types[call.Fun]
	if !ok || tv.IsType() || tv.IsBuiltin() {
		return nil
	}
	var sig *types.Signature
	var managed []bool
	if fn, ok := typeutil.Callee(info, call).(*types.Func); ok {
		if sel, ok := ast.Unparen(call.Fun).(*ast.SelectorExpr); ok && lockMethod(info, sel) != nil {
			return nil
		}
		sig = fn.Origin().Signature()
		managed = c.managed(fn.Origin())
	} else {
		sig, _ = tv.Type.Underlying().(*types.Signature)
		if id, ok := ast.Unparen(call.Fun).(*ast.Ident); ok && sig != nil {
			if v, ok := info.Uses[id].(*types.Var); ok && c.lits[v] != nil {
				managed = c.litManaged(c.lits[v], sig)
			}
		}
	}
	if sig == nil {
		return nil
	}
	var idx []int
	for i := range sig.Results().Len() {
		if isLock(sig.Results().At(i).Type()) && (i >= len(managed) || !managed[i]) {
			idx = append(idx, i)
		}
	}
	return idx
}

// resultType returns the instantiated type of result i of call.
func resultType(info *types.Info, call *ast.CallExpr, i int) types.Type {
	t := info.TypeOf(call)
	if tup, ok := t.(*types.Tuple); ok {
		return tup.At(i).Type()
	}
	return t
}

// inModule reports whether pkg belongs to the lockproof module.
func inModule(pkg *types.Package) bool {
	return pkg != nil && (pkg.Path() == modulePath || strings.HasPrefix(pkg.Path(), modulePath+"/"))
}
