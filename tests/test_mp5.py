"""course_lib.mp5 against the formulas, finite differences and a torch autograd reference."""
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import mp5

A = 9


def rel_err(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def problem(N=5, C=3, D=4, A=2, B=None, seed=0, scale=0.5):
    """Random float64 features, weights and targets with some positive anchors."""
    rng = np.random.default_rng(seed)
    lead = () if B is None else (B,)
    X = rng.normal(size=lead + (N, N, C))
    W1 = rng.normal(0, scale, (3, 3, C, D))
    W2 = rng.normal(0, scale, (1, 1, D, A, 5))
    Y = np.zeros(lead + (N, N, A, 5))
    Y[..., :4] = rng.normal(0, 0.5, Y[..., :4].shape)
    Y[..., 4] = rng.random(Y[..., 4].shape) < 0.3
    Y[..., :4] *= Y[..., 4:]
    return X, W1, W2, Y


def total_loss(X, W1, W2, Y) -> float:
    return sum(mp5.loss(mp5.forwardprop(X, W1, W2)[1], Y))


def analytic_gradients(X, W1, W2, Y):
    H, Yhat = mp5.forwardprop(X, W1, W2)
    G1, G2 = mp5.backprop(Y, Yhat, H, W2)
    return mp5.weight_gradient(X, H, G1, G2, W1.shape[0], W1.shape[1])


def torch_reference(X, W1, W2, Y):
    """Loss, dW1, dW2 with torch autograd; X (B, N1, N2, C) or (N1, N2, C)."""
    x = torch.as_tensor(X).reshape((-1,) + X.shape[-3:]).permute(0, 3, 1, 2)
    w1 = torch.tensor(W1, requires_grad=True)
    w2 = torch.tensor(W2, requires_grad=True)
    # True convolution = torch's correlation with the kernel flipped in both axes.
    k1 = w1.flip(0, 1).permute(3, 2, 0, 1)
    h = F.relu(F.conv2d(x, k1, padding=W1.shape[0] // 2))
    out = torch.einsum("bdyx,dk->byxk", h, w2.reshape(W2.shape[2], -1)).reshape(Y.shape)
    y = torch.as_tensor(Y)
    p = torch.sigmoid(out[..., 4])
    bce = F.binary_cross_entropy(p, y[..., 4])
    pos = y[..., 4] > 0.5
    mse = 0.5 * ((out[..., :4] - y[..., :4])[pos] ** 2).sum() / max(int(pos.sum()), 1)
    (bce + mse).backward()
    return h.permute(0, 2, 3, 1).reshape(X.shape[:-1] + (-1,)), out.detach(), p.detach(), bce, mse, w1.grad, w2.grad


# --- conv2, conv_layer, sigmoid, safe_log ---------------------------------------------------

def conv2_formula(H, W, p):
    """out[n1, n2] = sum_m w[m1, m2] x[n1 - m1 + p, n2 - m2 + p], zero outside x."""
    N1, N2 = H.shape[0] - W.shape[0] + 1 + 2 * p, H.shape[1] - W.shape[1] + 1 + 2 * p
    out = np.zeros((N1, N2))
    for n1 in range(N1):
        for n2 in range(N2):
            for m1 in range(W.shape[0]):
                for m2 in range(W.shape[1]):
                    i, j = n1 - m1 + W.shape[0] - 1 - p, n2 - m2 + W.shape[1] - 1 - p
                    if 0 <= i < H.shape[0] and 0 <= j < H.shape[1]:
                        out[n1, n2] += W[m1, m2] * H[i, j]
    return out


@pytest.mark.parametrize("shape,kernel,p", [((5, 6), (3, 3), 1), ((5, 6), (3, 2), 0), ((4, 4), (1, 1), 0),
                                            ((6, 5), (5, 5), 2), ((3, 3), (3, 3), 2)])
def test_conv2_matches_the_formula(shape, kernel, p):
    rng = np.random.default_rng(1)
    H, W = rng.normal(size=shape), rng.normal(size=kernel)
    np.testing.assert_allclose(mp5.conv2(H, W, p), conv2_formula(H, W, p), atol=1e-12)


def test_conv2_is_a_true_convolution():
    H = np.zeros((5, 5))
    H[2, 2] = 1
    W = np.arange(9.0).reshape(3, 3)
    # An impulse reproduces the kernel itself, not its mirror image.
    np.testing.assert_array_equal(mp5.conv2(H, W, 1)[1:4, 1:4], W)


@settings(max_examples=25, deadline=None)
@given(n1=st.integers(1, 7), n2=st.integers(1, 7), c=st.integers(1, 4), d=st.integers(1, 4),
       m=st.sampled_from([1, 3, 5]), seed=st.integers(0, 1000))
def test_conv_layer_matches_torch(n1, n2, c, d, m, seed):
    rng = np.random.default_rng(seed)
    H, W = rng.normal(size=(n1, n2, c)), rng.normal(size=(m, m, c, d))
    p = m // 2
    ref = F.conv2d(torch.tensor(H).permute(2, 0, 1)[None], torch.tensor(W).flip(0, 1).permute(3, 2, 0, 1), padding=p)
    np.testing.assert_allclose(mp5.conv_layer(H, W, p), ref[0].permute(1, 2, 0).numpy(), atol=1e-10)


def test_conv_layer_is_conv2_summed_over_channels():
    rng = np.random.default_rng(2)
    H, W = rng.normal(size=(6, 6, 3)), rng.normal(size=(3, 3, 3, 2))
    ref = sum(mp5.conv2(H[:, :, c], W[:, :, c, 1], 1) for c in range(3))
    np.testing.assert_allclose(mp5.conv_layer(H, W, 1)[:, :, 1], ref, atol=1e-12)


def test_sigmoid_is_stable_and_exact():
    x = np.array([-1000.0, -20.0, 0.0, 3.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = mp5.sigmoid(x)
    np.testing.assert_allclose(s, torch.sigmoid(torch.tensor(x)).numpy(), rtol=1e-12, atol=0)
    assert s[0] == 0.0 and s[-1] == 1.0


def test_safe_log_clamps_and_naive_log_hides_zero():
    x = np.array([0.0, 1e-300, 0.5, 1.0])
    np.testing.assert_allclose(mp5.safe_log(x), [-100, -100, np.log(0.5), 0])
    np.testing.assert_allclose(mp5.safe_log_naive(x), [0, 0, np.log(0.5), 0])


# --- forward -----------------------------------------------------------------------------------

def test_forwardprop_matches_loop_and_torch():
    X, W1, W2, Y = problem(N=6, C=4, D=5, A=3)
    H, Yhat = mp5.forwardprop(X, W1, W2)
    Hl, Yl = mp5.forwardprop_loop(X, W1, W2)
    np.testing.assert_allclose(H, Hl, atol=1e-12)
    np.testing.assert_allclose(Yhat, Yl, atol=1e-12)
    h, out, p, *_ = torch_reference(X, W1, W2, Y)
    assert rel_err(H, h.detach()) < 1e-12
    assert rel_err(Yhat[..., :4], out[..., :4]) < 1e-12 and rel_err(Yhat[..., 4], p) < 1e-12


def test_forwardprop_batch_equals_one_at_a_time():
    X, W1, W2, _ = problem(B=3)
    H, Yhat = mp5.forwardprop(X, W1, W2)
    for b in range(3):
        np.testing.assert_allclose(Yhat[b], mp5.forwardprop(X[b], W1, W2)[1], atol=1e-12)
    assert H.shape == X.shape[:-1] + (W1.shape[3],)


def test_forwardprop_keeps_float32():
    X, W1, W2, _ = problem()
    H, Yhat = mp5.forwardprop(X.astype(np.float32), W1.astype(np.float32), W2.astype(np.float32))
    assert H.dtype == Yhat.dtype == np.float32


def test_empty_batch_gives_empty_outputs():
    X, W1, W2, Y = problem(B=2)
    H, Yhat = mp5.forwardprop(X[:0], W1, W2)
    assert H.shape == (0, 5, 5, 4) and Yhat.shape == (0, 5, 5, 2, 5)


# --- loss and gradients -------------------------------------------------------------------------

def test_loss_matches_torch():
    X, W1, W2, Y = problem(B=2)
    _, Yhat = mp5.forwardprop(X, W1, W2)
    bce, mse = mp5.loss(Yhat, Y)
    *_, tbce, tmse, _, _ = torch_reference(X, W1, W2, Y)
    assert rel_err(bce, tbce.item()) < 1e-10 and rel_err(mse, tmse.item()) < 1e-10


def test_mse_is_zero_without_positives():
    X, W1, W2, Y = problem()
    Y[...] = 0
    _, Yhat = mp5.forwardprop(X, W1, W2)
    assert mp5.loss(Yhat, Y)[1] == 0.0
    G1, G2 = mp5.backprop(Y, Yhat, *mp5.forwardprop(X, W1, W2)[:1], W2)
    assert np.all(G2[..., :4] == 0)


@pytest.mark.parametrize("batch", [None, 2])
def test_gradients_match_finite_differences(batch):
    X, W1, W2, Y = problem(B=batch, seed=3)
    dW1, dW2 = analytic_gradients(X, W1, W2, Y)
    rng = np.random.default_rng(4)
    eps = 1e-6
    for W, dW, which in ((W1, dW1, 0), (W2, dW2, 1)):
        idx = [tuple(rng.integers(0, s) for s in W.shape) for _ in range(25)]
        num, ana = [], []
        for i in idx:
            Wp, Wm = W.copy(), W.copy()
            Wp[i] += eps
            Wm[i] -= eps
            args_p = (Wp, W2) if which == 0 else (W1, Wp)
            args_m = (Wm, W2) if which == 0 else (W1, Wm)
            num.append((total_loss(X, *args_p, Y) - total_loss(X, *args_m, Y)) / (2 * eps))
            ana.append(dW[i])
        assert rel_err(ana, num) < 1e-6, which


def test_gradients_match_torch_autograd_on_full_shapes():
    rng = np.random.default_rng(5)
    X = np.maximum(rng.normal(size=(2, 8, 8, 512)), 0)
    W1 = rng.normal(0, 0.01, (3, 3, 512, 128))
    W2 = rng.normal(0, 0.1, (1, 1, 128, A, 5))
    Y = np.zeros((2, 8, 8, A, 5))
    Y[:, 2:4, 3:5, :3, 4] = 1
    Y[..., :4] = rng.normal(0, 0.3, Y[..., :4].shape) * Y[..., 4:]
    dW1, dW2 = analytic_gradients(X, W1, W2, Y)
    *_, g1, g2 = torch_reference(X, W1, W2, Y)
    assert rel_err(dW1, g1) < 1e-10 and rel_err(dW2, g2) < 1e-10
    # The lesson computes in float32: still within 1e-5 of the float64 reference.
    f32 = [a.astype(np.float32) for a in (X, W1, W2, Y)]
    dW1_32, dW2_32 = analytic_gradients(*f32)
    assert rel_err(dW1_32, g1) < 1e-5 and rel_err(dW2_32, g2) < 1e-5


def test_backprop_index4_is_p_minus_y_over_count():
    X, W1, W2, Y = problem()
    H, Yhat = mp5.forwardprop(X, W1, W2)
    _, G2 = mp5.backprop(Y, Yhat, H, W2)
    np.testing.assert_allclose(G2[..., 4], (Yhat[..., 4] - Y[..., 4]) / Y[..., 4].size)


def test_weight_update_steps_against_the_gradient():
    X, W1, W2, Y = problem(seed=6)
    dW1, dW2 = analytic_gradients(X, W1, W2, Y)
    before = total_loss(X, W1, W2, Y)
    V1, V2 = mp5.weight_update(W1, W2, dW1, dW2, 1e-3)
    np.testing.assert_allclose(V1, W1 - 1e-3 * dW1)
    assert total_loss(X, V1, V2, Y) < before


def test_adam_training_lowers_the_loss():
    X, W1, W2, Y = problem(B=2, seed=7)
    cols = mp5.im2col(X, 3, 3, 1)
    state = mp5.adam_init(W1, W2)
    losses = []
    for _ in range(30):
        W1, W2, state, bce, mse = mp5.training_step(cols, Y, W1, W2, state, 1e-2)
        losses.append(bce + mse)
    assert losses[-1] < 0.5 * losses[0]


# --- detect -------------------------------------------------------------------------------------

def grid_anchors(n=4, a=2):
    anchors = np.zeros((n, n, a, 4))
    anchors[..., 0] = (16 * np.arange(n) + 8)[None, :, None]
    anchors[..., 1] = (16 * np.arange(n) + 8)[:, None, None]
    anchors[..., 2] = 20 * (1 + np.arange(a))
    anchors[..., 3] = 30 * (1 + np.arange(a))
    return anchors


def test_detect_returns_the_best_anchors_decoded():
    anchors = grid_anchors()
    Yhat = np.zeros((4, 4, 2, 5))
    Yhat[..., 4] = 0.1
    Yhat[1, 2, 1] = [0.5, -0.25, np.log(1.5), 0, 0.9]  # y = 1, x = 2
    Yhat[3, 0, 0, 4] = 0.8
    rects = mp5.detect(Yhat, 2, anchors)
    np.testing.assert_allclose(rects[0], [40 + 0.5 * 40, 24 - 0.25 * 60, 60, 60])
    np.testing.assert_allclose(rects[1], anchors[3, 0, 0])
    assert mp5.detect(Yhat, 0, anchors).shape == (0, 4)


def test_detect_caps_growth_at_2x():
    anchors = grid_anchors()
    Yhat = np.zeros((4, 4, 2, 5))
    Yhat[0, 0, 0] = [0, 0, 10, -10, 1]
    w, h = mp5.detect(Yhat, 1, anchors)[0, 2:]
    assert w == pytest.approx(40) and h == pytest.approx(30 * np.exp(-10))


# --- bad input ----------------------------------------------------------------------------------

def test_bad_inputs_raise_value_errors():
    X, W1, W2, Y = problem()
    H, Yhat = mp5.forwardprop(X, W1, W2)
    bad_nan = X.copy()
    bad_nan[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="X"):
        mp5.forwardprop(bad_nan, W1, W2)
    with pytest.raises(ValueError, match="W1"):
        mp5.forwardprop(X, W1[:, :, :2], W2)
    with pytest.raises(ValueError, match="W1"):
        mp5.forwardprop(X, W1[:2, :2], W2)
    with pytest.raises(ValueError, match="W2"):
        mp5.forwardprop(X, W1, W2[..., :4])
    with pytest.raises(ValueError, match="X"):
        mp5.forwardprop(X[0], W1, W2)
    with pytest.raises(ValueError, match="Yhat and Y"):
        mp5.loss(Yhat, Y[:2])
    with pytest.raises(ValueError, match="H"):
        mp5.backprop(Y, Yhat, H[..., :2], W2)
    with pytest.raises(ValueError, match="anchors"):
        mp5.detect(Yhat, 3, np.zeros((2, 2, 2, 4)))
    with pytest.raises(ValueError, match="dW1"):
        mp5.weight_update(W1, W2, W1[..., :1], W2, 0.1)
    with pytest.raises(ValueError, match="M1, M2"):
        mp5.weight_gradient(X, H, H, Yhat, 2, 2)
    with pytest.raises(ValueError, match="W"):
        mp5.conv2(np.zeros((2, 2)), np.zeros((5, 5)), 0)
    with pytest.raises(ValueError, match="Yhat"):
        mp5.loss(np.full_like(Yhat, np.inf), Y)
