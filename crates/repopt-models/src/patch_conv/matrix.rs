//! Strided matrix views of host buffers and the one `gemm` call the convolution kernels make.

/// `m·n·k` from which a product of a one-tile batch uses every thread (as `flex` decides).
pub(super) const PARALLEL_PRODUCT: usize = 192 * 192 * 192;

/// A raw pointer the parallel tasks of a kernel share, each writing its own part.
#[derive(Clone, Copy)]
pub(super) struct SharedMut(pub(super) *mut f32);

// SAFETY: tiles write disjoint parts of the buffer (see each use).
unsafe impl Send for SharedMut {}
// SAFETY: as above.
unsafe impl Sync for SharedMut {}

impl SharedMut {
    pub(super) fn offset(self, elements: usize) -> *mut f32 {
        // SAFETY: callers stay within the buffer.
        unsafe { self.0.add(elements) }
    }
}

/// A read-only matrix: pointer, row stride, column stride (in elements).
#[derive(Clone, Copy)]
pub(super) struct Mat {
    ptr: *const f32,
    row_stride: isize,
    col_stride: isize,
}

impl Mat {
    /// Row-major with rows `stride` apart.
    pub(super) fn rows(ptr: *const f32, stride: usize) -> Self {
        Self {
            ptr,
            row_stride: stride as isize,
            col_stride: 1,
        }
    }

    /// Rows `row_stride` apart, columns `col_stride` apart.
    pub(super) fn strided(ptr: *const f32, row_stride: usize, col_stride: usize) -> Self {
        Self {
            ptr,
            row_stride: row_stride as isize,
            col_stride: col_stride as isize,
        }
    }

    /// The transpose of a row-major matrix whose rows are `stride` apart.
    pub(super) fn columns(ptr: *const f32, stride: usize) -> Self {
        Self {
            ptr,
            row_stride: 1,
            col_stride: stride as isize,
        }
    }

    pub(super) fn transposed(self) -> Self {
        Self {
            ptr: self.ptr,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }
}

/// A writable matrix: pointer, row stride, column stride (in elements).
pub(super) struct MatMut {
    ptr: *mut f32,
    row_stride: isize,
    col_stride: isize,
}

impl MatMut {
    /// Rows `row_stride` apart, columns `col_stride` apart.
    pub(super) fn strided(ptr: *mut f32, row_stride: usize, col_stride: usize) -> Self {
        Self {
            ptr,
            row_stride: row_stride as isize,
            col_stride: col_stride as isize,
        }
    }

    pub(super) fn rows(ptr: *mut f32, stride: usize) -> Self {
        Self {
            ptr,
            row_stride: stride as isize,
            col_stride: 1,
        }
    }
}

/// `dst (+)= lhs · rhs` for `[m, n, k]`.
///
/// `gemm` vectorises along `m`: with `m` small (16 output channels), most of each micro-kernel
/// is idle. The same product computed as `dstᵀ = rhsᵀ · lhsᵀ` (only strides change) runs the
/// long side along `m`; this picks it whenever `m < n`.
///
/// # Safety
/// Each operand's `m·n`, `m·k`, `k·n` entries lie within its buffer for its strides.
pub(super) unsafe fn product(
    dims: [usize; 3],
    parallelism: gemm::Parallelism,
    dst: MatMut,
    lhs: Mat,
    rhs: Mat,
    accumulate: bool,
) {
    let [m, n, k] = dims;
    // SAFETY: the caller's guarantee covers the operands of either orientation.
    unsafe {
        if m < n {
            let dst_t = MatMut {
                ptr: dst.ptr,
                row_stride: dst.col_stride,
                col_stride: dst.row_stride,
            };
            let (lhs_t, rhs_t) = (rhs.transposed(), lhs.transposed());
            product_as_given([n, m, k], parallelism, dst_t, lhs_t, rhs_t, accumulate);
        } else {
            product_as_given(dims, parallelism, dst, lhs, rhs, accumulate);
        }
    }
}

/// `dst (+)= lhs · rhs` for `[m, n, k]`, in the orientation given: for operands laid out so that
/// `gemm` copies no left operand (whose rows are adjacent: row stride 1), which [`product`]
/// could turn round.
///
/// # Safety
/// Each operand's `m·n`, `m·k`, `k·n` entries lie within its buffer for its strides.
pub(super) unsafe fn product_as_given(
    dims: [usize; 3],
    parallelism: gemm::Parallelism,
    dst: MatMut,
    lhs: Mat,
    rhs: Mat,
    accumulate: bool,
) {
    let [m, n, k] = dims;
    // SAFETY: the caller's guarantee.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.ptr,
            dst.col_stride,
            dst.row_stride,
            accumulate,
            lhs.ptr,
            lhs.col_stride,
            lhs.row_stride,
            rhs.ptr,
            rhs.col_stride,
            rhs.row_stride,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
    }
}
