/* dnnl_bench.cpp — the benchmark configurations through oneDNN's RNN primitives (C++ API, oneDNN
 * 2.x as Debian ships it): lstm, lbr_gru (the GRU whose math is PyTorch's) and vanilla_rnn, one
 * primitive per layer, with the dense head as inner_product primitives (the activation a post-op;
 * its backward an eltwise_backward on the saved output).
 *
 *   dnnl_bench --version
 *   dnnl_bench --model DESC.json --data W X DY [--check OUTDIR | --runs N --modes step,forward,train]
 *              [--threads N]
 *
 * DESC.json is what an rnnc benchmark binary prints for `describe` (bench/rnnc_main.c): sizes,
 * cells, head and tensor names. W holds the weights (safetensors, PyTorch names), X the inputs
 * [T][B][I] and DY a fixed dloss/dy [T][B][O] (.npy). With --check the program writes, each from
 * the zero state: OUTDIR/y_step.npy (T calls of the step, state carried), y_seq.npy (one
 * forward), y_train.npy (the training forward) and grads.safetensors (backward of DY, PyTorch
 * names). Otherwise it times the modes and prints one JSON object, as `<model> bench --json` of
 * the generated driver does:
 *
 *   step     one timestep of all B sequences: per layer a T = 1 forward_inference primitive, state
 *            carried from call to call through src_iter/dst_iter (two buffers, swapped), then the
 *            head; what an application streaming with oneDNN does
 *   forward  one sequence of T steps: per layer a forward_inference primitive over T, then the head
 *            on all T*B rows
 *   train    forward_training of the layers and the head (workspace kept), then the backward of the
 *            head and of every layer (diff weights, diff bias, diff src); no loss, no optimizer
 *
 * Weights are reordered once, before timing, into the layouts the primitives ask for (format
 * "any"): for the forward, and for the backward (which wants its own); gradients are left in the
 * primitive's layout. rnnc's figures exclude its pack in the same way. The bottom layer's
 * diff_src_layer (dL/dx) is computed because the primitive always computes it; rnnc skips dx.
 *
 * Timing as the driver's bench: warm-up of >= 50 ms, calls per run chosen so that a run lasts
 * >= 2 ms, a run during which the process was preempted (involuntary context switch) redone up to
 * --runs times, then median, min and max time per call. --threads N: OpenMP threads (default 1;
 * the runner sets OMP_NUM_THREADS to match). */
#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

#include "nnrt.h"
#include <jansson.h>

#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;
using args_t = std::unordered_map<int, memory>;

namespace {

/* ---- The configuration ------------------------------------------------------------------- */

enum class Cell { rnn_tanh, rnn_relu, gru, lstm };

struct LayerDesc {
    Cell cell;
    int input, hidden;
};

struct HeadDesc {
    std::string act; /* linear, relu, tanh, sigmoid */
    int input, output;
};

struct TensorDesc {
    std::string name;
    std::vector<int64_t> shape;
};

struct Model {
    std::string name;
    int input = 0, output = 0, T = 0, B = 0;
    std::vector<LayerDesc> layers;
    std::vector<HeadDesc> heads;
    std::vector<TensorDesc> tensors;
};

[[noreturn]] void die(const std::string &msg)
{
    std::fprintf(stderr, "dnnl_bench: error: %s\n", msg.c_str());
    std::exit(1);
}

Model read_model(const char *path)
{
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root) die(std::string(path) + ": " + err.text);
    Model m;
    auto geti = [&](json_t *o, const char *k) {
        json_t *v = json_object_get(o, k);
        if (!json_is_integer(v)) die(std::string(path) + ": missing integer field " + k);
        return (int)json_integer_value(v);
    };
    auto gets = [&](json_t *o, const char *k) {
        json_t *v = json_object_get(o, k);
        if (!json_is_string(v)) die(std::string(path) + ": missing string field " + k);
        return std::string(json_string_value(v));
    };
    m.name = gets(root, "name");
    if (gets(root, "dtype") != "float32") die("only float32 models are benchmarked");
    if (geti(root, "output_last")) die("only output_at \"all\" models are benchmarked");
    m.input = geti(root, "input");
    m.output = geti(root, "output");
    m.T = geti(root, "seq_len");
    m.B = geti(root, "batch");
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(root, "layers"), i, v) {
        std::string c = gets(v, "cell");
        Cell cell = c == "lstm" ? Cell::lstm : c == "gru" ? Cell::gru : c == "rnn_relu" ? Cell::rnn_relu : Cell::rnn_tanh;
        m.layers.push_back({cell, geti(v, "input"), geti(v, "hidden")});
    }
    json_array_foreach(json_object_get(root, "heads"), i, v) m.heads.push_back({gets(v, "act"), geti(v, "input"), geti(v, "output")});
    json_array_foreach(json_object_get(root, "tensors"), i, v) {
        TensorDesc t{gets(v, "name"), {}};
        size_t j;
        json_t *d;
        json_array_foreach(json_object_get(v, "shape"), j, d) t.shape.push_back(json_integer_value(d));
        m.tensors.push_back(t);
    }
    json_decref(root);
    if (m.layers.empty()) die(std::string(path) + ": no layers");
    return m;
}

int gates_of(Cell c) { return c == Cell::lstm ? 4 : c == Cell::gru ? 3 : 1; }

/* oneDNN gate g holds PyTorch gate pt_gate(c, g): the same order (i, f, g, o) for LSTM; for the
 * GRU oneDNN's order is (u, r, o) = PyTorch's (z, r, n) = PyTorch gates (1, 0, 2). */
int pt_gate(Cell c, int g)
{
    static const int gru[3] = {1, 0, 2};
    return c == Cell::gru ? gru[g] : g;
}

/* ---- Memory helpers ---------------------------------------------------------------------- */

engine eng(engine::kind::cpu, 0);
stream strm(eng);

memory::desc md(const memory::dims &d, tag t) { return memory::desc(d, dt::f32, t); }

memory zeros(const memory::desc &d)
{
    memory m(d, eng);
    std::memset(m.get_data_handle(), 0, d.get_size());
    return m;
}

/* A copy of user in the layout want (a plain reference when the layouts agree). */
memory to_layout(const memory &user, const memory::desc &want)
{
    if (user.get_desc() == want) return user;
    memory out(want, eng);
    reorder(user, out).execute(strm, const_cast<memory &>(user), out);
    strm.wait();
    return out;
}

memory::desc arg_md(const primitive_desc_base &pd, int arg) { return pd.query_md(query::exec_arg_md, arg); }

/* ---- One recurrent layer ----------------------------------------------------------------- */

/* Primitive descriptor of a layer for prop (forward_inference or forward_training) over T steps,
 * weights in the layout the primitive prefers. */
primitive_desc make_fwd_pd(const LayerDesc &l, prop_kind prop, int T, int B)
{
    const int G = gates_of(l.cell), H = l.hidden, I = l.input;
    const auto dir = rnn_direction::unidirectional_left2right;
    auto src_layer = md({T, B, I}, tag::tnc), dst_layer = md({T, B, H}, tag::tnc);
    auto state = md({1, 1, B, H}, tag::ldnc);
    auto wl = md({1, 1, I, G, H}, tag::any), wi = md({1, 1, H, G, H}, tag::any);
    switch (l.cell) {
    case Cell::lstm: {
        auto bias = md({1, 1, 4, H}, tag::ldgo);
        lstm_forward::desc d(prop, dir, src_layer, state, state, wl, wi, bias, dst_layer, state, state);
        return lstm_forward::primitive_desc(d, eng);
    }
    case Cell::gru: {
        auto bias = md({1, 1, 4, H}, tag::ldgo); /* linear-before-reset: b_u, b_r, b_o, b_u' */
        lbr_gru_forward::desc d(prop, dir, src_layer, state, wl, wi, bias, dst_layer, state);
        return lbr_gru_forward::primitive_desc(d, eng);
    }
    default: {
        auto bias = md({1, 1, 1, H}, tag::ldgo);
        auto act = l.cell == Cell::rnn_relu ? algorithm::eltwise_relu : algorithm::eltwise_tanh;
        vanilla_rnn_forward::desc d(prop, act, dir, src_layer, state, wl, wi, bias, dst_layer, state);
        return vanilla_rnn_forward::primitive_desc(d, eng);
    }
    }
}

primitive make_fwd(const LayerDesc &l, const primitive_desc &pd)
{
    switch (l.cell) {
    case Cell::lstm: return lstm_forward(lstm_forward::primitive_desc(pd.get()));
    case Cell::gru: return lbr_gru_forward(lbr_gru_forward::primitive_desc(pd.get()));
    default: return vanilla_rnn_forward(vanilla_rnn_forward::primitive_desc(pd.get()));
    }
}

/* The backward primitive descriptor of a layer, given its forward_training one as the hint. */
primitive_desc make_bwd_pd(const LayerDesc &l, const primitive_desc &fwd, int T, int B)
{
    const int G = gates_of(l.cell), H = l.hidden, I = l.input;
    const auto dir = rnn_direction::unidirectional_left2right;
    auto src_layer = md({T, B, I}, tag::tnc), dst_layer = md({T, B, H}, tag::tnc);
    auto state = md({1, 1, B, H}, tag::ldnc);
    auto wl = md({1, 1, I, G, H}, tag::any), wi = md({1, 1, H, G, H}, tag::any);
    switch (l.cell) {
    case Cell::lstm: {
        auto bias = md({1, 1, 4, H}, tag::ldgo);
        lstm_backward::desc d(prop_kind::backward, dir, src_layer, state, state, wl, wi, bias, dst_layer, state, state,
                              src_layer, state, state, wl, wi, bias, dst_layer, state, state);
        return lstm_backward::primitive_desc(d, eng, lstm_forward::primitive_desc(fwd.get()));
    }
    case Cell::gru: {
        auto bias = md({1, 1, 4, H}, tag::ldgo);
        lbr_gru_backward::desc d(prop_kind::backward, dir, src_layer, state, wl, wi, bias, dst_layer, state, src_layer,
                                 state, wl, wi, bias, dst_layer, state);
        return lbr_gru_backward::primitive_desc(d, eng, lbr_gru_forward::primitive_desc(fwd.get()));
    }
    default: {
        auto bias = md({1, 1, 1, H}, tag::ldgo);
        auto act = l.cell == Cell::rnn_relu ? algorithm::eltwise_relu : algorithm::eltwise_tanh;
        vanilla_rnn_backward::desc d(prop_kind::backward, act, dir, src_layer, state, wl, wi, bias, dst_layer, state,
                                     src_layer, state, wl, wi, bias, dst_layer, state);
        return vanilla_rnn_backward::primitive_desc(d, eng, vanilla_rnn_forward::primitive_desc(fwd.get()));
    }
    }
}

primitive make_bwd(const LayerDesc &l, const primitive_desc &pd)
{
    switch (l.cell) {
    case Cell::lstm: return lstm_backward(lstm_backward::primitive_desc(pd.get()));
    case Cell::gru: return lbr_gru_backward(lbr_gru_backward::primitive_desc(pd.get()));
    default: return vanilla_rnn_backward(vanilla_rnn_backward::primitive_desc(pd.get()));
    }
}

/* A layer's weights in oneDNN's user layouts (ldigo, ldigo, ldgo), from PyTorch's tensors. */
struct LayerWeights {
    memory wl, wi, bias;
};

LayerWeights from_pytorch(const LayerDesc &l, const float *w_ih, const float *w_hh, const float *b_ih, const float *b_hh)
{
    const int G = gates_of(l.cell), H = l.hidden, I = l.input;
    const int GB = l.cell == Cell::gru ? 4 : G;
    LayerWeights w{memory(md({1, 1, I, G, H}, tag::ldigo), eng), memory(md({1, 1, H, G, H}, tag::ldigo), eng),
                   memory(md({1, 1, GB, H}, tag::ldgo), eng)};
    float *wl = (float *)w.wl.get_data_handle(), *wi = (float *)w.wi.get_data_handle();
    float *bias = (float *)w.bias.get_data_handle();
    for (int g = 0; g < G; g++) {
        const int pg = pt_gate(l.cell, g);
        for (int h = 0; h < H; h++) {
            const size_t row = (size_t)pg * H + h; /* PyTorch row of this gate and unit */
            for (int i = 0; i < I; i++) wl[((size_t)i * G + g) * H + h] = w_ih[row * I + i];
            for (int i = 0; i < H; i++) wi[((size_t)i * G + g) * H + h] = w_hh[row * H + i];
            /* LBR GRU: the new gate's b_hn sits inside r * (W_hn h + b_hn): oneDNN's 4th bias */
            if (l.cell == Cell::gru && g == 2) {
                bias[2 * H + h] = b_ih[row];
                bias[3 * H + h] = b_hh[row];
            } else {
                bias[(size_t)g * H + h] = b_ih[row] + b_hh[row];
            }
        }
    }
    return w;
}

/* The reverse for gradients: diff weights in oneDNN's user layouts to PyTorch's four tensors. A
 * summed bias has one gradient, which both PyTorch biases receive. */
void to_pytorch(const LayerDesc &l, const memory &dwl, const memory &dwi, const memory &dbias, float *w_ih, float *w_hh,
                float *b_ih, float *b_hh)
{
    const int G = gates_of(l.cell), H = l.hidden, I = l.input;
    const float *wl = (const float *)dwl.get_data_handle(), *wi = (const float *)dwi.get_data_handle();
    const float *bias = (const float *)dbias.get_data_handle();
    for (int g = 0; g < G; g++) {
        const int pg = pt_gate(l.cell, g);
        for (int h = 0; h < H; h++) {
            const size_t row = (size_t)pg * H + h;
            for (int i = 0; i < I; i++) w_ih[row * I + i] = wl[((size_t)i * G + g) * H + h];
            for (int i = 0; i < H; i++) w_hh[row * H + i] = wi[((size_t)i * G + g) * H + h];
            if (l.cell == Cell::gru && g == 2) {
                b_ih[row] = bias[2 * H + h];
                b_hh[row] = bias[3 * H + h];
            } else {
                b_ih[row] = b_hh[row] = bias[(size_t)g * H + h];
            }
        }
    }
}

/* ---- The network ------------------------------------------------------------------------- */

/* Parameters by name, as PyTorch's state_dict: what the weights file holds and the gradients
 * file receives. */
struct Params {
    std::vector<std::vector<float>> data;
    const Model *m;
    float *get(const std::string &name)
    {
        for (size_t i = 0; i < m->tensors.size(); i++)
            if (m->tensors[i].name == name) return data[i].data();
        die("no tensor " + name);
    }
};

Params make_params(const Model &m)
{
    Params p{{}, &m};
    for (auto &t : m.tensors) {
        size_t n = 1;
        for (auto d : t.shape) n *= (size_t)d;
        p.data.emplace_back(n, 0.0f);
    }
    return p;
}

std::vector<nnrt_tensor> tensor_list(const Model &m, Params &p)
{
    std::vector<nnrt_tensor> list;
    for (size_t i = 0; i < m.tensors.size(); i++) {
        nnrt_tensor t{};
        t.name = m.tensors[i].name.c_str();
        t.dtype = NNRT_F32;
        t.ndim = (int)m.tensors[i].shape.size();
        for (int d = 0; d < t.ndim; d++) t.shape[d] = m.tensors[i].shape[d];
        t.data = p.data[i].data();
        list.push_back(t);
    }
    return list;
}

std::string lname(const char *what, int k) { return std::string("rnn.") + what + "_l" + std::to_string(k); }

algorithm head_alg(const std::string &act, bool use_dst)
{
    if (act == "relu") return use_dst ? algorithm::eltwise_relu_use_dst_for_bwd : algorithm::eltwise_relu;
    if (act == "tanh") return use_dst ? algorithm::eltwise_tanh_use_dst_for_bwd : algorithm::eltwise_tanh;
    return use_dst ? algorithm::eltwise_logistic_use_dst_for_bwd : algorithm::eltwise_logistic;
}

/* One dense head layer over `rows` rows: y = act(W x + b), and what its backward needs. */
struct Head {
    HeadDesc d;
    int rows;
    inner_product_forward::primitive_desc fwd_pd;
    primitive fwd;
    memory w, b; /* forward layout */
    memory dst;  /* [rows][out] */
    /* training only */
    primitive bwd_data, bwd_weights, act_bwd;
    memory w_bwd, dw, db, dpre, dsrc;
};

Head make_head(const HeadDesc &d, int rows, prop_kind prop, float *pw, float *pb)
{
    Head h;
    h.d = d;
    h.rows = rows;
    auto src = md({rows, d.input}, tag::nc), dst = md({rows, d.output}, tag::nc);
    auto wany = md({d.output, d.input}, tag::any), bias = md({d.output}, tag::x);
    primitive_attr attr;
    if (d.act != "linear") {
        post_ops po;
        po.append_eltwise(1.0f, head_alg(d.act, prop != prop_kind::forward_inference), 0.0f, 0.0f);
        attr.set_post_ops(po);
    }
    inner_product_forward::desc fd(prop, src, wany, bias, dst);
    h.fwd_pd = inner_product_forward::primitive_desc(fd, attr, eng);
    h.fwd = inner_product_forward(h.fwd_pd);
    memory wuser(md({d.output, d.input}, tag::oi), eng, pw);
    h.w = to_layout(wuser, h.fwd_pd.weights_desc());
    h.b = memory(bias, eng, pb);
    h.dst = memory(dst, eng);
    if (prop == prop_kind::forward_inference) return h;

    inner_product_backward_data::desc bd(src, wany, dst);
    inner_product_backward_data::primitive_desc bd_pd(bd, eng, h.fwd_pd);
    h.bwd_data = inner_product_backward_data(bd_pd);
    h.w_bwd = to_layout(wuser, bd_pd.weights_desc());
    h.dsrc = memory(src, eng);
    inner_product_backward_weights::desc bw(src, wany, bias, dst);
    inner_product_backward_weights::primitive_desc bw_pd(bw, eng, h.fwd_pd);
    h.bwd_weights = inner_product_backward_weights(bw_pd);
    h.dw = memory(bw_pd.diff_weights_desc(), eng);
    h.db = memory(bias, eng);
    if (d.act != "linear") {
        eltwise_forward::desc ef(prop_kind::forward_training, head_alg(d.act, true), dst, 0.0f, 0.0f);
        eltwise_forward::primitive_desc ef_pd(ef, eng);
        eltwise_backward::desc eb(head_alg(d.act, true), dst, dst, 0.0f, 0.0f);
        eltwise_backward::primitive_desc eb_pd(eb, eng, ef_pd);
        h.act_bwd = eltwise_backward(eb_pd);
        h.dpre = memory(dst, eng);
    }
    return h;
}

/* Runs the head chain on `in` ([rows][H] under another desc: same buffer). */
const memory &run_heads(std::vector<Head> &heads, const memory &in)
{
    const memory *x = &in;
    for (auto &h : heads) {
        memory src(md({h.rows, h.d.input}, tag::nc), eng, x->get_data_handle());
        h.fwd.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, h.w}, {DNNL_ARG_BIAS, h.b}, {DNNL_ARG_DST, h.dst}});
        x = &h.dst;
    }
    return *x;
}

struct Layer {
    LayerDesc d;
    LayerWeights user;
    /* step: T = 1 inference */
    primitive step;
    memory step_wl, step_wi, step_out;
    memory h[2], c[2]; /* ping-pong state */
    /* forward: T inference */
    primitive seq;
    memory seq_wl, seq_wi, seq_out, seq_h, seq_c, seq_h_out, seq_c_out;
    /* train: T forward_training + backward */
    primitive tr_fwd, tr_bwd;
    memory tr_wl, tr_wi, tr_out, tr_ws, tr_h_out, tr_c_out;
    memory bwd_wl, bwd_wi, dsrc, dh0, dc0, dwl, dwi, dbias, dwl_user, dwi_user, dbias_user;
    memory zero_h, zero_c; /* initial state and diff_dst_iter of the train call */
};

struct Net {
    const Model &m;
    Params &p;
    std::vector<Layer> layers;
    std::vector<Head> step_heads, seq_heads, tr_heads;
    memory x_step, x_seq, dy;
    int cur = 0; /* which state buffer holds the current state */
    bool have_step = false, have_seq = false, have_train = false;

    Net(const Model &model, Params &params) : m(model), p(params) {}

    void build(bool step, bool seq, bool train)
    {
        const int T = m.T, B = m.B;
        for (size_t k = 0; k < m.layers.size(); k++) {
            Layer L;
            L.d = m.layers[k];
            const int H = L.d.hidden;
            L.user = from_pytorch(L.d, p.get(lname("weight_ih", (int)k)), p.get(lname("weight_hh", (int)k)),
                                  p.get(lname("bias_ih", (int)k)), p.get(lname("bias_hh", (int)k)));
            auto state = md({1, 1, B, H}, tag::ldnc);
            L.zero_h = zeros(state);
            L.zero_c = zeros(state);
            if (step) {
                auto pd = make_fwd_pd(L.d, prop_kind::forward_inference, 1, B);
                L.step = make_fwd(L.d, pd);
                L.step_wl = to_layout(L.user.wl, arg_md(pd, DNNL_ARG_WEIGHTS_LAYER));
                L.step_wi = to_layout(L.user.wi, arg_md(pd, DNNL_ARG_WEIGHTS_ITER));
                L.step_out = zeros(md({1, B, H}, tag::tnc));
                for (int i = 0; i < 2; i++) {
                    L.h[i] = zeros(state);
                    L.c[i] = zeros(state);
                }
            }
            if (seq) {
                auto pd = make_fwd_pd(L.d, prop_kind::forward_inference, T, B);
                L.seq = make_fwd(L.d, pd);
                L.seq_wl = to_layout(L.user.wl, arg_md(pd, DNNL_ARG_WEIGHTS_LAYER));
                L.seq_wi = to_layout(L.user.wi, arg_md(pd, DNNL_ARG_WEIGHTS_ITER));
                L.seq_out = zeros(md({T, B, H}, tag::tnc));
                L.seq_h = zeros(state);
                L.seq_c = zeros(state);
                L.seq_h_out = zeros(state);
                L.seq_c_out = zeros(state);
            }
            if (train) {
                auto fpd = make_fwd_pd(L.d, prop_kind::forward_training, T, B);
                L.tr_fwd = make_fwd(L.d, fpd);
                L.tr_wl = to_layout(L.user.wl, arg_md(fpd, DNNL_ARG_WEIGHTS_LAYER));
                L.tr_wi = to_layout(L.user.wi, arg_md(fpd, DNNL_ARG_WEIGHTS_ITER));
                L.tr_out = zeros(md({T, B, H}, tag::tnc));
                L.tr_ws = zeros(fpd.query_md(query::workspace_md));
                L.tr_h_out = zeros(state);
                L.tr_c_out = zeros(state);
                auto bpd = make_bwd_pd(L.d, fpd, T, B);
                L.tr_bwd = make_bwd(L.d, bpd);
                L.bwd_wl = to_layout(L.user.wl, arg_md(bpd, DNNL_ARG_WEIGHTS_LAYER));
                L.bwd_wi = to_layout(L.user.wi, arg_md(bpd, DNNL_ARG_WEIGHTS_ITER));
                L.dsrc = zeros(md({T, B, L.d.input}, tag::tnc));
                L.dh0 = zeros(state);
                L.dc0 = zeros(state);
                L.dwl = zeros(arg_md(bpd, DNNL_ARG_DIFF_WEIGHTS_LAYER));
                L.dwi = zeros(arg_md(bpd, DNNL_ARG_DIFF_WEIGHTS_ITER));
                L.dbias = zeros(arg_md(bpd, DNNL_ARG_DIFF_BIAS));
                L.dwl_user = zeros(L.user.wl.get_desc());
                L.dwi_user = zeros(L.user.wi.get_desc());
                L.dbias_user = zeros(L.user.bias.get_desc());
            }
            layers.push_back(std::move(L));
        }
        for (size_t j = 0; j < m.heads.size(); j++) {
            float *w = p.get("head." + std::to_string(j) + ".weight"), *b = p.get("head." + std::to_string(j) + ".bias");
            if (step) step_heads.push_back(make_head(m.heads[j], B, prop_kind::forward_inference, w, b));
            if (seq) seq_heads.push_back(make_head(m.heads[j], T * B, prop_kind::forward_inference, w, b));
            if (train) tr_heads.push_back(make_head(m.heads[j], T * B, prop_kind::forward_training, w, b));
        }
        x_step = memory(md({1, B, m.input}, tag::tnc), eng);
        x_seq = zeros(md({T, B, m.input}, tag::tnc));
        dy = zeros(md({T * B, m.output}, tag::nc));
        have_step = step;
        have_seq = seq;
        have_train = train;
    }

    static void add_state(args_t &a, const Layer &L, int src_arg, const memory &h, const memory &c)
    {
        a[src_arg] = h;
        if (L.d.cell == Cell::lstm) a[src_arg == DNNL_ARG_SRC_ITER ? DNNL_ARG_SRC_ITER_C : DNNL_ARG_DST_ITER_C] = c;
    }

    void reset_state()
    {
        for (auto &L : layers)
            for (int i = 0; i < 2; i++) {
                std::memset(L.h[i].get_data_handle(), 0, L.h[i].get_desc().get_size());
                std::memset(L.c[i].get_data_handle(), 0, L.c[i].get_desc().get_size());
            }
    }

    /* One timestep: x [B][I] -> the output [B][O] (returned memory). */
    const memory &step(const float *x)
    {
        x_step.set_data_handle(const_cast<float *>(x));
        const memory *in = &x_step;
        const int nxt = cur ^ 1;
        for (auto &L : layers) {
            args_t a{{DNNL_ARG_SRC_LAYER, *in},  {DNNL_ARG_WEIGHTS_LAYER, L.step_wl}, {DNNL_ARG_WEIGHTS_ITER, L.step_wi},
                     {DNNL_ARG_BIAS, L.user.bias}, {DNNL_ARG_DST_LAYER, L.step_out}};
            add_state(a, L, DNNL_ARG_SRC_ITER, L.h[cur], L.c[cur]);
            add_state(a, L, DNNL_ARG_DST_ITER, L.h[nxt], L.c[nxt]);
            L.step.execute(strm, a);
            in = &L.step_out;
        }
        cur = nxt;
        return step_heads.empty() ? *in : run_heads(step_heads, *in);
    }

    /* One sequence, from the zero state (its final state goes to other buffers). */
    const memory &forward()
    {
        const memory *in = &x_seq;
        for (auto &L : layers) {
            args_t a{{DNNL_ARG_SRC_LAYER, *in},  {DNNL_ARG_WEIGHTS_LAYER, L.seq_wl}, {DNNL_ARG_WEIGHTS_ITER, L.seq_wi},
                     {DNNL_ARG_BIAS, L.user.bias}, {DNNL_ARG_DST_LAYER, L.seq_out}};
            add_state(a, L, DNNL_ARG_SRC_ITER, L.seq_h, L.seq_c);
            add_state(a, L, DNNL_ARG_DST_ITER, L.seq_h_out, L.seq_c_out);
            L.seq.execute(strm, a);
            in = &L.seq_out;
        }
        return seq_heads.empty() ? *in : run_heads(seq_heads, *in);
    }

    void zero_grads()
    {
        for (auto &L : layers)
            for (memory *g : {&L.dwl, &L.dwi, &L.dbias}) std::memset(g->get_data_handle(), 0, g->get_desc().get_size());
        for (auto &h : tr_heads)
            for (memory *g : {&h.dw, &h.db}) std::memset(g->get_data_handle(), 0, g->get_desc().get_size());
    }

    /* Training forward (returns y) then backward of dy. */
    const memory &train()
    {
        const memory *in = &x_seq;
        for (auto &L : layers) {
            args_t a{{DNNL_ARG_SRC_LAYER, *in},  {DNNL_ARG_WEIGHTS_LAYER, L.tr_wl}, {DNNL_ARG_WEIGHTS_ITER, L.tr_wi},
                     {DNNL_ARG_BIAS, L.user.bias}, {DNNL_ARG_DST_LAYER, L.tr_out}, {DNNL_ARG_WORKSPACE, L.tr_ws}};
            add_state(a, L, DNNL_ARG_SRC_ITER, L.zero_h, L.zero_c);
            add_state(a, L, DNNL_ARG_DST_ITER, L.tr_h_out, L.tr_c_out);
            L.tr_fwd.execute(strm, a);
            in = &L.tr_out;
        }
        const memory &y = tr_heads.empty() ? *in : run_heads(tr_heads, *in);
        /* backward: the head, top down, then the layers */
        const memory *diff = &dy;
        for (size_t j = tr_heads.size(); j-- > 0;) {
            Head &h = tr_heads[j];
            const memory &top = j == 0 ? layers.back().tr_out : tr_heads[j - 1].dst;
            memory src(md({h.rows, h.d.input}, tag::nc), eng, top.get_data_handle());
            const memory *dpre = diff;
            if (h.d.act != "linear") {
                h.act_bwd.execute(strm, {{DNNL_ARG_DST, h.dst}, {DNNL_ARG_DIFF_DST, *diff}, {DNNL_ARG_DIFF_SRC, h.dpre}});
                dpre = &h.dpre;
            }
            h.bwd_weights.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, *dpre}, {DNNL_ARG_DIFF_WEIGHTS, h.dw},
                                         {DNNL_ARG_DIFF_BIAS, h.db}});
            h.bwd_data.execute(strm, {{DNNL_ARG_DIFF_DST, *dpre}, {DNNL_ARG_WEIGHTS, h.w_bwd}, {DNNL_ARG_DIFF_SRC, h.dsrc}});
            diff = &h.dsrc;
        }
        memory diff_top;
        if (!tr_heads.empty()) {
            const int H = layers.back().d.hidden;
            diff_top = memory(md({m.T, m.B, H}, tag::tnc), eng, diff->get_data_handle());
        } else {
            diff_top = memory(md({m.T, m.B, m.output}, tag::tnc), eng, dy.get_data_handle());
        }
        const memory *ddst = &diff_top;
        for (size_t k = layers.size(); k-- > 0;) {
            Layer &L = layers[k];
            const memory &src = k == 0 ? x_seq : layers[k - 1].tr_out;
            args_t a{{DNNL_ARG_SRC_LAYER, src},
                     {DNNL_ARG_WEIGHTS_LAYER, L.bwd_wl},
                     {DNNL_ARG_WEIGHTS_ITER, L.bwd_wi},
                     {DNNL_ARG_BIAS, L.user.bias},
                     {DNNL_ARG_DST_LAYER, L.tr_out},
                     {DNNL_ARG_WORKSPACE, L.tr_ws},
                     {DNNL_ARG_DIFF_DST_LAYER, *ddst},
                     {DNNL_ARG_DIFF_SRC_LAYER, L.dsrc},
                     {DNNL_ARG_DIFF_WEIGHTS_LAYER, L.dwl},
                     {DNNL_ARG_DIFF_WEIGHTS_ITER, L.dwi},
                     {DNNL_ARG_DIFF_BIAS, L.dbias}};
            add_state(a, L, DNNL_ARG_SRC_ITER, L.zero_h, L.zero_c);
            add_state(a, L, DNNL_ARG_DST_ITER, L.tr_h_out, L.tr_c_out);
            a[DNNL_ARG_DIFF_DST_ITER] = L.zero_h;
            a[DNNL_ARG_DIFF_SRC_ITER] = L.dh0;
            if (L.d.cell == Cell::lstm) {
                a[DNNL_ARG_DIFF_DST_ITER_C] = L.zero_c;
                a[DNNL_ARG_DIFF_SRC_ITER_C] = L.dc0;
            }
            L.tr_bwd.execute(strm, a);
            ddst = &L.dsrc;
        }
        return y;
    }

    /* Gradients in PyTorch's names and layouts, into g. */
    void grads_to(Params &g)
    {
        for (size_t k = 0; k < layers.size(); k++) {
            Layer &L = layers[k];
            for (auto pair : {std::make_pair(&L.dwl, &L.dwl_user), std::make_pair(&L.dwi, &L.dwi_user),
                              std::make_pair(&L.dbias, &L.dbias_user)}) {
                reorder(*pair.first, *pair.second).execute(strm, *pair.first, *pair.second);
            }
            strm.wait();
            to_pytorch(L.d, L.dwl_user, L.dwi_user, L.dbias_user, g.get(lname("weight_ih", (int)k)),
                       g.get(lname("weight_hh", (int)k)), g.get(lname("bias_ih", (int)k)), g.get(lname("bias_hh", (int)k)));
        }
        for (size_t j = 0; j < tr_heads.size(); j++) {
            Head &h = tr_heads[j];
            memory wuser(md({h.d.output, h.d.input}, tag::oi), eng, g.get("head." + std::to_string(j) + ".weight"));
            reorder(h.dw, wuser).execute(strm, h.dw, wuser);
            strm.wait();
            std::memcpy(g.get("head." + std::to_string(j) + ".bias"), h.db.get_data_handle(), h.db.get_desc().get_size());
        }
    }
};

/* ---- Timing, as the generated driver's bench ---------------------------------------------- */

const int64_t MIN_RUN_NS = 2000000, WARMUP_NS = 50000000, PATIENCE_NS = 200000000;

int64_t now_ns()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

long preemptions()
{
    rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_nivcsw : 0;
}

struct Result {
    double median_us = 0, min_us = 0, max_us = 0;
    int64_t calls = 0, preempted = 0;
};

/* prepare() untimed before each run; call() timed, `calls` times back to back. */
Result measure(int runs, const std::function<void()> &prepare, const std::function<void()> &call)
{
    auto run = [&](int64_t calls, int64_t *ns, bool *pre) {
        prepare();
        long sw = preemptions();
        int64_t t0 = now_ns();
        for (int64_t i = 0; i < calls; i++) call();
        strm.wait();
        *ns = now_ns() - t0;
        *pre = preemptions() != sw;
    };
    Result r;
    int64_t calls = 1, spent = 0;
    for (;;) {
        int64_t ns;
        bool pre;
        run(calls, &ns, &pre);
        spent += std::max<int64_t>(ns, 1);
        if (ns >= MIN_RUN_NS && (!pre || spent >= PATIENCE_NS) && spent >= WARMUP_NS) break;
        if (ns < MIN_RUN_NS) {
            double grow = ns > 0 ? 1.25 * (double)MIN_RUN_NS / (double)ns : 100;
            calls = (int64_t)std::ceil((double)calls * std::min(grow, 100.0));
        }
    }
    std::vector<double> clean, aside;
    for (int k = 0; (int)clean.size() < runs && k < 2 * runs; k++) {
        int64_t ns;
        bool pre;
        run(calls, &ns, &pre);
        double us = (double)ns * 1e-3 / (double)calls;
        (pre ? aside : clean).push_back(us);
    }
    std::sort(aside.begin(), aside.end());
    r.preempted = runs - (int64_t)clean.size();
    for (int64_t i = 0; i < r.preempted; i++) clean.push_back(aside[i]);
    std::sort(clean.begin(), clean.end());
    size_t mid = clean.size() / 2;
    r.median_us = clean.size() % 2 ? clean[mid] : (clean[mid - 1] + clean[mid]) / 2;
    r.min_us = clean.front();
    r.max_us = clean.back();
    r.calls = calls;
    return r;
}

/* ---- Check files --------------------------------------------------------------------------- */

void read_npy(const char *path, const Model &m, int last, std::vector<float> &out)
{
    nnrt_array a{};
    if (nnrt_npy_read(path, &a) != NNRT_OK) die(nnrt_last_error());
    if (a.dtype != NNRT_F32 || a.ndim != 3 || a.shape[0] != m.T || a.shape[1] != m.B || a.shape[2] != last)
        die(std::string(path) + ": expected float32 [T, B, " + std::to_string(last) + "]");
    out.assign((float *)a.data, (float *)a.data + a.count);
    nnrt_array_free(&a);
}

void write_npy(const std::string &path, const Model &m, const float *y)
{
    nnrt_array a{};
    a.dtype = NNRT_F32;
    a.ndim = 3;
    a.shape[0] = m.T;
    a.shape[1] = m.B;
    a.shape[2] = m.output;
    a.count = (size_t)m.T * m.B * m.output;
    a.data = const_cast<float *>(y);
    if (nnrt_npy_write(path.c_str(), &a) != NNRT_OK) die(nnrt_last_error());
}

const char *isa_name(cpu_isa isa)
{
    switch (isa) {
    case cpu_isa::sse41: return "sse41";
    case cpu_isa::avx: return "avx";
    case cpu_isa::avx2: return "avx2";
    case cpu_isa::avx2_vnni: return "avx2_vnni";
    case cpu_isa::avx512_core: return "avx512_core";
    case cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}

} // namespace

int main(int argc, char **argv)
{
    int threads = 1;
    for (int i = 1; i + 1 < argc; i++)
        if (std::string(argv[i]) == "--threads") threads = std::max(1, std::atoi(argv[i + 1]));
    omp_set_num_threads(threads);
    const char *model_path = nullptr, *check_dir = nullptr;
    const char *data[3] = {nullptr, nullptr, nullptr};
    int runs = 21;
    std::string modes = "step,forward,train";
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--version") {
            const dnnl_version_t *v = dnnl_version();
            std::printf("{\"onednn\": \"%d.%d.%d\", \"onednn_isa\": \"%s\", \"omp_threads\": %d}\n", v->major, v->minor,
                        v->patch, isa_name(get_effective_cpu_isa()), omp_get_max_threads());
            return 0;
        } else if (a == "--model" && i + 1 < argc) {
            model_path = argv[++i];
        } else if (a == "--data" && i + 3 < argc) {
            for (int j = 0; j < 3; j++) data[j] = argv[++i];
        } else if (a == "--check" && i + 1 < argc) {
            check_dir = argv[++i];
        } else if (a == "--threads" && i + 1 < argc) {
            ++i; /* read above, before anything touches OpenMP */
        } else if (a == "--runs" && i + 1 < argc) {
            runs = std::max(1, std::atoi(argv[++i]));
        } else if (a == "--modes" && i + 1 < argc) {
            modes = argv[++i];
        } else {
            std::fprintf(stderr, "usage: dnnl_bench --version\n"
                                 "       dnnl_bench --model DESC.json --data W.safetensors X.npy DY.npy\n"
                                 "                  [--check OUTDIR | --runs N --modes step,forward,train] [--threads N]\n");
            return 2;
        }
    }
    if (!model_path || !data[0]) die("--model DESC.json and --data W X DY are required");
    Model m = read_model(model_path);
    Params p = make_params(m);
    auto has = [&](const char *mode) { return check_dir || modes.find(mode) != std::string::npos; };
    std::vector<float> x, dy;
    {
        auto list = tensor_list(m, p);
        if (nnrt_safetensors_read(data[0], list.data(), list.size()) != NNRT_OK) die(nnrt_last_error());
        read_npy(data[1], m, m.input, x);
        read_npy(data[2], m, m.output, dy);
    }
    try {
        Net net(m, p);
        net.build(has("step"), has("forward"), has("train"));
        std::memcpy(net.x_seq.get_data_handle(), x.data(), x.size() * sizeof(float));
        std::memcpy(net.dy.get_data_handle(), dy.data(), dy.size() * sizeof(float));
        const size_t xrow = (size_t)m.B * m.input, yrow = (size_t)m.B * m.output;
        if (check_dir) {
            std::string dir = check_dir;
            std::vector<float> y((size_t)m.T * yrow);
            net.reset_state();
            for (int t = 0; t < m.T; t++) {
                const memory &out = net.step(x.data() + t * xrow);
                strm.wait();
                std::memcpy(y.data() + t * yrow, out.get_data_handle(), yrow * sizeof(float));
            }
            write_npy(dir + "/y_step.npy", m, y.data());
            const memory &yseq = net.forward();
            strm.wait();
            write_npy(dir + "/y_seq.npy", m, (const float *)yseq.get_data_handle());
            net.zero_grads();
            const memory &ytr = net.train();
            strm.wait();
            write_npy(dir + "/y_train.npy", m, (const float *)ytr.get_data_handle());
            Params g = make_params(m);
            net.grads_to(g);
            auto list = tensor_list(m, g);
            if (nnrt_safetensors_write((dir + "/grads.safetensors").c_str(), list.data(), list.size()) != NNRT_OK)
                die(nnrt_last_error());
            return 0;
        }
        std::printf("{\"impl\": \"onednn\", \"model\": \"%s\", \"threads\": %d, \"T\": %d, \"B\": %d, \"runs\": %d",
                    m.name.c_str(), omp_get_max_threads(), m.T, m.B, runs);
        auto report = [&](const char *name, const Result &r) {
            std::printf(", \"%s_us\": %.6g, \"%s_min_us\": %.6g, \"%s_max_us\": %.6g, \"%s_calls_per_run\": %lld, "
                        "\"%s_preempted_runs\": %lld",
                        name, r.median_us, name, r.min_us, name, r.max_us, name, (long long)r.calls, name,
                        (long long)r.preempted);
        };
        if (net.have_step) {
            int t = 0;
            report("step", measure(
                               runs, [&] { net.reset_state(); },
                               [&] {
                                   net.step(x.data() + (size_t)t * xrow);
                                   if (++t == m.T) t = 0;
                               }));
        }
        if (net.have_seq) report("forward", measure(runs, [] {}, [&] { net.forward(); }));
        if (net.have_train) report("train", measure(runs, [&] { net.zero_grads(); }, [&] { net.train(); }));
        std::printf("}\n");
    } catch (const dnnl::error &e) {
        die(std::string("oneDNN: ") + e.what() + " (status " + std::to_string((int)e.status) + ")");
    }
    return 0;
}
