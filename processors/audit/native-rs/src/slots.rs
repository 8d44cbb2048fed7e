//! Instances of slotted Python classes made from Rust, for the objects made once per line or event.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyType};

/// A slotted class (a frozen dataclass with `slots=True`) whose instances are made here: allocated as
/// `object.__new__` allocates them and filled as `object.__setattr__` fills slots, past the class's own
/// `__init__` and `__setattr__`. In Python those calls cost more than the work they wrap.
pub(crate) struct SlotClass {
    class: Py<PyType>,
    names: Vec<Py<PyString>>,
}

impl SlotClass {
    /// Bind `class`, checking that it allocates as `object` does and that every name is one of its slots.
    pub(crate) fn bind(
        py: Python<'_>,
        class: &Bound<'_, PyType>,
        names: &[&str],
    ) -> PyResult<Self> {
        let object = py.import("builtins")?.getattr("object")?;
        if !class.getattr("__new__")?.is(&object.getattr("__new__")?) {
            return Err(PyTypeError::new_err(format!(
                "{} has a __new__ of its own",
                class.name()?
            )));
        }
        let member = py.import("types")?.getattr("MemberDescriptorType")?;
        let mut slots = Vec::with_capacity(names.len());
        for &name in names {
            let is_slot = match class.getattr(name) {
                Ok(attribute) => attribute.is_instance(&member)?,
                Err(_) => false,
            };
            if !is_slot {
                return Err(PyTypeError::new_err(format!(
                    "{}.{name} is not a slot",
                    class.name()?
                )));
            }
            slots.push(PyString::intern(py, name).unbind());
        }
        Ok(SlotClass {
            class: class.clone().unbind(),
            names: slots,
        })
    }

    /// A new instance with `values` in the slots, in the order of the names given to `bind`.
    pub(crate) fn make<'py>(
        &self,
        py: Python<'py>,
        values: &[Bound<'py, PyAny>],
    ) -> PyResult<Bound<'py, PyAny>> {
        debug_assert_eq!(values.len(), self.names.len());
        let class = self.class.bind(py).as_type_ptr();
        // SAFETY: `class` is a live type whose `__new__` is object's (checked in `bind`), so its tp_alloc
        // is what object.__new__ would call; a NULL result has the exception set.
        let instance = unsafe {
            let alloc = (*class).tp_alloc.unwrap_or(pyo3::ffi::PyType_GenericAlloc);
            Bound::from_owned_ptr_or_err(py, alloc(class, 0))?
        };
        for (name, value) in self.names.iter().zip(values) {
            // SAFETY: live objects; GenericSetAttr finds the slot's member descriptor on the type (checked
            // in `bind`) and stores a new reference.
            let status = unsafe {
                pyo3::ffi::PyObject_GenericSetAttr(instance.as_ptr(), name.as_ptr(), value.as_ptr())
            };
            if status < 0 {
                return Err(PyErr::fetch(py));
            }
        }
        Ok(instance)
    }
}
