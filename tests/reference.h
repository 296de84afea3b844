/* reference.h — an independent, naive forward pass for any rnnc model, in double.
 *
 * Written plainly from the equations of DESIGN.md "Math" (which are PyTorch's), one function per
 * cell, straight loops, no packing and no cleverness, so that a reader can check it line by line
 * against the documentation of torch.nn.RNN, torch.nn.GRU, torch.nn.LSTM and torch.nn.Linear.
 * It shares no code with the generator: it is driven only by a model's descriptor (runtime/nnrt.h:
 * layers, heads and the table of parameter tensors with their offsets) and finds every tensor by
 * its PyTorch name, never by position.
 *
 * Reference state: two double arrays h and c, each holding every layer's [B][H_k] block one after
 * another (layer 0 first), ref_state_count(m) elements each. c is read and written only for lstm
 * layers; its blocks for other layers are left untouched.
 */
#ifndef RNNC_TESTS_REFERENCE_H
#define RNNC_TESTS_REFERENCE_H

#include <stddef.h>

#include "nnrt.h"

/* Checks that the descriptor is self-consistent and has every tensor the reference needs, with
 * PyTorch's shapes: layer inputs chain (layer 0 reads m->input, layer k reads H_{k-1}), heads
 * chain, m->output is the last head's (or last layer's) size, every tensor lies inside the flat
 * array and count = product of shape. Returns 0 when it is, else -1 with a message in msg. */
int ref_check_model(const nnrt_model *m, char *msg, size_t msg_size);

/* Elements of one of the reference state arrays h or c: sum over layers of B * H_k. */
size_t ref_state_count(const nnrt_model *m);
/* Offset of layer k's [B][H_k] block inside h (and c). */
size_t ref_state_offset(const nnrt_model *m, int layer);

/* Elements of x for T steps (T*B*I) and of y (T*B*O, or B*O when m->output_last). */
size_t ref_x_count(const nnrt_model *m, int T);
size_t ref_y_count(const nnrt_model *m, int T);

/* The forward pass over T >= 1 steps, starting from the state in h and c and leaving the final
 * state there. params: the model's flat parameter array converted to double (PyTorch layout, as
 * the descriptor's table says). x: [T][B][I]. y: [T][B][O], or [B][O] when m->output_last (the
 * head applied to the top layer's hidden state after the last step). The model must have passed
 * ref_check_model. */
void ref_forward(const nnrt_model *m, const double *params, int T, const double *x, double *y,
                 double *h, double *c);

/* ---- Glue between the reference and a generated model --------------------------------------
 * Conversions between the model's element type (m->dtype: float or double) and double. */
void ref_to_double(const nnrt_model *m, const void *src, double *dst, size_t n);
void ref_from_double(const nnrt_model *m, const double *src, void *dst, size_t n);

/* The generated state struct (runtime contract: "h (and c for lstm) of every layer, [B][H]
 * each"), assumed laid out layer by layer, h_k [B][H_k] then, for an lstm layer, c_k [B][H_k], no
 * padding. ref_state_layout_ok says whether m->state_bytes agrees with that assumption; the tests
 * check it before they rely on it. */
int ref_state_layout_ok(const nnrt_model *m);
/* Generated state -> reference h, c (c blocks of non-lstm layers set to 0). */
void ref_state_unpack(const nnrt_model *m, const void *state, double *h, double *c);
/* Reference h, c -> generated state. */
void ref_state_pack(const nnrt_model *m, const double *h, const double *c, void *state);

/* ---- Comparisons ---------------------------------------------------------------------------
 * An element passes when |got - ref| <= atol + rtol * |ref|; a NaN or infinity in got fails. */
#define REF_REL_FLOOR 1e-3 /* max_rel only counts elements with |ref| >= this */
typedef struct ref_diff {
    size_t count;     /* elements compared */
    size_t bad;       /* elements that failed */
    size_t first_bad; /* index of the first failing element, when bad > 0 */
    double max_abs;   /* max |got - ref| (infinity when got holds a NaN) */
    double max_rel;   /* max |got - ref| / |ref| over elements with |ref| >= REF_REL_FLOOR */
} ref_diff;
ref_diff ref_compare(const double *got, const double *ref, size_t n, double atol, double rtol);
/* Folds b into a (max of the maxima, sums of the counts; first_bad is a's unless a had none). */
void ref_diff_merge(ref_diff *a, ref_diff b);
/* Names element i of a y array as "[t 3][b 1][o 0]" (t counted from t0), or "[b 1][o 0]" when
 * m->output_last. */
void ref_describe_y(const nnrt_model *m, int t0, size_t i, char *buf, size_t size);
/* Names element i of a reference h or c array as "layer 1 [b 0][unit 5]". */
void ref_describe_state(const nnrt_model *m, size_t i, char *buf, size_t size);

/* Short names for messages: "lstm", "relu", ... */
const char *ref_cell_name(int cell);
const char *ref_act_name(int act);

#endif /* RNNC_TESTS_REFERENCE_H */
