// The playground's page: it draws what the JSON API returns and computes no number of its own (rounding for
// display aside). Three views: the equations step by step, gradient norms through time, a trained model.
"use strict";

(function () {
  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));
  const SVG = "http://www.w3.org/2000/svg";

  // ------------------------------------------------------------------------------------- language

  let lang = localStorage.getItem("rnnkit-lang") || ((navigator.language || "").startsWith("zh") ? "zh" : "en");

  function t(key, vars) {
    let text = window.I18N[lang][key] ?? window.I18N.en[key] ?? key;
    for (const [name, value] of Object.entries(vars || {})) text = text.split(`{${name}}`).join(value);
    return text;
  }

  // The explain trace's English meanings ("input gate pre-activation") in the page's language.
  function meaning(text) {
    const key = "meaning_" + text.replace(/[^a-z]+/g, "_");
    if (window.I18N.en[key]) return t(key);
    if (text.endsWith(" pre-activation")) {
      const base = meaning(text.slice(0, -" pre-activation".length));
      return lang === "zh" ? `${base}的预激活` : `${base} pre-activation`;
    }
    return text;
  }

  function applyLanguage() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    for (const el of $$("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    $("#lang").textContent = lang === "en" ? "中文" : "English";
    renderStep();
    renderGradients();
    renderModel();
  }

  // ------------------------------------------------------------------------------------- helpers

  // As rnnkit explain prints numbers: `precision` decimals, trailing zeros dropped, -0 -> 0.
  function num(v, precision) {
    if (v === null || v === undefined) return "NaN";
    let s = v.toFixed(precision);
    if (s.includes(".")) s = s.replace(/0+$/, "").replace(/\.$/, "");
    return s === "-0" || s === "" ? "0" : s;
  }
  const factor = (v, p) => { const s = num(v, p); return s.startsWith("-") ? `(${s})` : s; };
  const vector = (v, p) => "[" + v.map((e) => num(e, p)).join(", ") + "]";

  function heat(v, scale = 1) {
    const a = Math.min(1, Math.abs(v) / (scale || 1));
    return v >= 0 ? `rgba(215, 70, 50, ${a.toFixed(3)})` : `rgba(45, 105, 215, ${a.toFixed(3)})`;
  }

  function el(tag, attrs = {}, ...children) {
    const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.setAttribute("class", v);
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "style") Object.assign(node.style, v);
      else node.setAttribute(k, v);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  async function api(path, body) {
    const response = await fetch(path, body === undefined ? {} : {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || response.statusText);
    return data;
  }

  function showError(id, error) { $(id).textContent = error ? String(error.message || error) : ""; }

  // ------------------------------------------------------------------------------------- tabs

  for (const button of $$("#tabs button")) {
    button.addEventListener("click", () => {
      for (const b of $$("#tabs button")) b.classList.toggle("active", b === button);
      for (const v of $$(".view")) v.classList.toggle("active", v.id === "view-" + button.dataset.view);
      if (button.dataset.view === "gradients" && !G.data) requestGradients();
    });
  }
  $("#lang").addEventListener("click", () => {
    lang = lang === "en" ? "zh" : "en";
    localStorage.setItem("rnnkit-lang", lang);
    applyLanguage();
  });

  // =================================================================================== 1. step through

  const S = { data: null, phase: "forward", t: 0 };  // t = 0: computed, nothing stepped yet
  const stepForm = $("#step-form");

  function precision() {
    const p = parseInt(stepForm.precision.value, 10);
    return Number.isFinite(p) ? Math.max(0, Math.min(10, p)) : 4;
  }

  function updateStepControls() {
    const weights = stepForm.weights.value;
    for (const e of $$(".random-only", stepForm)) e.hidden = weights !== "random";
    for (const e of $$(".json-only", stepForm)) e.hidden = weights !== "json";
    for (const e of $$(".seeded", stepForm)) e.hidden = weights === "json" || (weights === "tutorial" && stepForm.cell.value === "rnn");
    for (const e of $$(".rnn-only", stepForm)) e.hidden = stepForm.cell.value !== "rnn";
  }
  stepForm.addEventListener("change", updateStepControls);

  function stepRequest() {
    const f = stepForm;
    const request = { cell: f.cell.value, loss: f.loss.value };
    if (f.cell.value === "rnn") request.nonlinearity = f.nonlinearity.value;
    if (f.weights.value === "json") {
      let weights;
      try { weights = JSON.parse(f.json.value); } catch (e) { throw new Error(`weights: not valid JSON (${e.message})`); }
      request.weights = weights;
      if (weights && typeof weights === "object" && !("cell" in weights)) delete request.cell;  // read off the weights
      if (weights && typeof weights === "object" && "nonlinearity" in weights) delete request.nonlinearity;
    } else {
      request.weights = f.weights.value;
      request.seed = parseInt(f.seed.value, 10) || 0;
    }
    if (f.weights.value === "random") {
      for (const key of ["input_size", "hidden_size", "output_size", "steps"]) request[key] = parseInt(f[key].value, 10);
    }
    if (f.x.value.trim()) {
      try { request.x = JSON.parse(f.x.value); } catch (e) { throw new Error(`x: not valid JSON (${e.message})`); }
    }
    return request;
  }

  stepForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("#step-error", null);
    try {
      S.data = await api("/api/trace", stepRequest());
      S.phase = "forward";
      S.t = 1;
    } catch (e) {
      showError("#step-error", e);
      S.data = null;
    }
    renderStep();
  });

  function move(delta) {
    if (!S.data) return;
    const T = S.data.sizes.T;
    if (delta > 0) {
      if (S.phase === "forward" && S.t < T) S.t += 1;
      else if (S.phase === "forward") S.phase = "backward";
      else if (S.t > 1) S.t -= 1;
    } else {
      if (S.phase === "backward" && S.t < T) S.t += 1;
      else if (S.phase === "backward") S.phase = "forward";
      else if (S.t > 1) S.t -= 1;
    }
    renderStep();
  }
  $("#next").addEventListener("click", () => move(1));
  $("#prev").addEventListener("click", () => move(-1));
  $("#to-end").addEventListener("click", () => {
    if (!S.data) return;
    S.phase = "backward";
    S.t = S.data.sizes.T;
    renderStep();
  });

  function formula(q) {
    if (q.kind === "apply") return `${q.function}(${q.argument})`;
    return q.terms.map((term) => term.type === "matvec" ? `${term.matrix} ${term.vector}` :
      term.type === "product" ? `${term.left} * ${term.right}` : term.name).join(" + ");
  }

  // The arithmetic of each element of a sum, as rnnkit explain writes it: terms with a zero vector left out.
  function elements(q, p) {
    const n = q.value.length, out = [];
    for (let j = 0; j < n; j++) {
      const parts = [];
      for (const term of q.terms) {
        if (term.type === "matvec" && term.v.some((e) => e !== 0)) {
          const row = S.data.matrices[term.matrix][j];
          row.forEach((m, k) => parts.push(`${factor(m, p)}*${factor(term.v[k], p)}`));
        } else if (term.type === "product" && term.a.some((e) => e !== 0) && term.b.some((e) => e !== 0)) {
          parts.push(`${factor(term.a[j], p)}*${factor(term.b[j], p)}`);
        } else if (term.type === "bias") {
          parts.push(factor(S.data.biases[term.name][j], p));
        }
      }
      out.push(parts.join(" + "));
    }
    return out;
  }

  function generic(name) { return name.replace(/_([01])\b/g, (m) => (m === "_1" ? "_t" : "_{t-1}")); }

  function renderStep() {
    const where = $("#step-where"), timeline = $("#timeline"), diagram = $("#diagram"), arith = $("#arith");
    const equations = $("#equations");
    for (const node of [where, timeline, diagram, arith, equations]) node.replaceChildren();
    updateStepControls();
    const d = S.data;
    if (!d) return;
    const { T, I, H, O } = d.sizes, p = precision();
    const cellName = { rnn: `RNN (${d.nonlinearity})`, lstm: "LSTM", gru: "GRU" }[d.cell];
    where.append(el("div", { class: "sizes", text: t("sizes", { cell: cellName, T, I, H, O }) }),
      el("div", { class: "phase", id: "phase", "data-phase": S.phase, "data-t": S.t,
        text: t(S.phase === "forward" ? "forward_at" : "backward_at", { t: S.t, T }) }));

    // the time line: forward steps done, then the gradient's norm as it flows back
    const back = d.backward.steps, maxNorm = Math.max(...back.map((s) => s.norm || 0), 1e-300);
    for (let s = 1; s <= T; s++) {
      const done = S.phase === "backward" || s <= S.t, flowed = S.phase === "backward" && s >= S.t;
      const chip = el("button", { type: "button", class: "chip" + (done ? " done" : "") + (s === S.t ? " current" : ""),
        title: flowed ? `‖dL/dh_${s}‖ = ${back[s - 1].norm.toExponential(3)}` : `t = ${s}` }, `t=${s}`);
      if (flowed) chip.append(el("span", { class: "bar", style: { width: `${(100 * back[s - 1].norm / maxNorm).toFixed(1)}%` } }));
      chip.addEventListener("click", () => { S.t = s; renderStep(); });
      timeline.append(chip);
    }

    const step = d.steps[S.t - 1];
    diagram.append(drawCell(d, step, p));
    if (S.phase === "backward") arith.append(drawBackward(d, p));
    arith.append(el("h3", { text: t("arithmetic", { t: S.t }) }));
    arith.append(el("div", { class: "q given", "data-q": "x" },
      el("div", { class: "formula", text: `x_${S.t} = ${vector(step.x, p)}` }),
      el("div", { class: "meaning", text: t("input_x") })));
    for (const q of step.quantities) {
      const box = el("div", { class: "q", "data-q": q.symbol, id: `q-${q.symbol}` },
        el("div", { class: "formula" }, el("b", { text: q.name }), ` = ${formula(q)}`),
        el("div", { class: "meaning", text: meaning(q.meaning) }));
      if (q.kind === "apply") {
        box.append(el("div", { class: "work", text: `= ${q.function}(${vector(q.argument_value, p)})` }));
      } else {
        const parts = elements(q, p);
        if (parts.every((s) => s) && (q.terms.length > 1 || q.terms[0].type !== "bias")) {
          box.append(el("div", { class: "work", text: "= [" + parts.join(", ") + "]" }));
        }
      }
      box.append(el("div", { class: "value", text: `= ${vector(q.value, p)}` }));
      arith.append(box);
    }

    equations.append(el("h3", { text: t("equations") }));
    for (const q of d.steps[0].quantities) {
      equations.append(el("div", { class: "eq" }, el("code", { text: `${generic(q.name)} = ${generic(formula(q))}` }),
        el("span", { class: "meaning", text: meaning(q.meaning) })));
    }
  }

  function drawBackward(d, p) {
    const b = d.backward, s = b.steps[S.t - 1];
    const box = el("div", { class: "backward", id: "backward" }, el("h3", { text: t("backward_title", { t: S.t }) }),
      el("div", { class: "meaning", text: t(b.loss === "last" ? "loss_text_last" : "loss_text_all", { L: num(b.L, p) }) +
        (b.output_is_h ? " " + t("output_is_h") : "") }),
      el("div", { class: "formula", text: t("backward_eq") }));
    const rows = [["dL_dy", s.dL_dy], ["direct", s.direct], ["from_future", s.from_future], ["dL_dh", s.dL_dh]];
    for (const [key, value] of rows) {
      box.append(el("div", { class: "grad-row", "data-g": key },
        el("span", { class: "label", text: t(key).replaceAll("_t", `_${S.t}`).replaceAll("{t+1}", `${S.t + 1}`) }),
        el("code", { text: vector(value, p) })));
    }
    box.append(el("div", { class: "grad-row", "data-g": "norm" }, el("span", { class: "label", text: `‖dL/dh_${S.t}‖` }),
      el("code", { text: num(s.norm, p) })));
    if (S.t === 1) {
      box.append(el("div", { class: "grad-row", "data-g": "dL_dh0" }, el("span", { class: "label", text: t("dL_dh0") }),
        el("code", { text: vector(b.dL_dh0, p) })));
    }
    return box;
  }

  // The cell's diagram at one step, laid out from the trace itself: each quantity is a box in the column of
  // its kind, with arrows from the vectors its rule reads.
  function drawCell(d, step, p) {
    const column = (sym) => sym.startsWith("prev_") || sym === "x" ? 0 : (sym.startsWith("a") || sym === "hn") ? 1 :
      ["i", "f", "g", "o", "r", "z", "n"].includes(sym) ? 2 : sym === "c" ? 3 : sym === "h" ? 4 : sym === "grad" ? 4 : 5;
    const tp = step.t;
    const nodes = [{ id: "x", name: `x_${tp}`, label: t("input_x"), value: step.x },
      { id: "prev_h", name: `h_${tp - 1}`, label: t("previous_h"), value: tp === 1 ? d.h0 : d.steps[tp - 2].quantities.find((q) => q.symbol === "h").value }];
    if (d.cell === "lstm") {
      nodes.push({ id: "prev_c", name: `c_${tp - 1}`, label: t("previous_c"), value: tp === 1 ? d.c0 : d.steps[tp - 2].quantities.find((q) => q.symbol === "c").value });
    }
    for (const q of step.quantities) {
      nodes.push({ id: q.symbol, name: q.name, label: meaning(q.meaning), value: q.value, fn: q.kind === "apply" ? q.function : "", q });
    }
    if (S.phase === "backward") {
      nodes.push({ id: "grad", name: `dL/dh_${tp}`, label: t("dL_dh"), value: d.backward.steps[tp - 1].dL_dh, gradient: true });
    }
    const resolve = (name) => {
      const m = name.match(/([a-z]+)_(\d+)/);
      if (!m) return null;
      if (m[1] === "x") return "x";
      if (Number(m[2]) === tp - 1) return "prev_" + m[1];
      return m[1];
    };
    const W = 170, GAP = 70, ROW = 15, perRow = 8;
    const rowsOf = (n) => (n <= 8 ? n : Math.ceil(n / perRow));
    const heightOf = (node) => 34 + rowsOf(node.value.length) * ROW;
    const columns = {};
    for (const node of nodes) (columns[column(node.id)] ||= []).push(node);
    const order = Object.keys(columns).map(Number).sort((a, b) => a - b);
    const colHeight = (c) => columns[c].reduce((s, n) => s + heightOf(n) + 16, -16);
    const height = Math.max(...order.map(colHeight)) + 40;
    const width = order.length * (W + GAP) - GAP + 40;
    order.forEach((c, k) => {
      let y = 20 + (height - 40 - colHeight(c)) / 2;
      for (const node of columns[c]) {
        Object.assign(node, { x: 20 + k * (W + GAP), y, h: heightOf(node) });
        y += node.h + 16;
      }
    });
    const byId = Object.fromEntries(nodes.map((n) => [n.id, n]));
    const svg = el("svg:svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "cell-svg", role: "img" });
    svg.append(el("svg:defs", {}, el("svg:marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      el("svg:path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#666" }))));
    const edges = el("svg:g", { class: "edges" });
    svg.append(edges);
    for (const node of nodes) {
      const sources = [];
      if (node.q && node.q.kind === "apply") sources.push([node.q.argument, node.q.function]);
      if (node.q && node.q.kind === "sum") {
        for (const term of node.q.terms) {
          if (term.type === "matvec") sources.push([term.vector, term.matrix]);
          if (term.type === "product") sources.push([term.left, "×"], [term.right, "×"]);
        }
      }
      if (node.gradient) sources.push([`h_${tp}`, ""]);
      for (const [name, how] of sources) {
        const from = byId[resolve(name)];
        if (!from || from === node) continue;
        const x1 = from.x + W, y1 = from.y + from.h / 2, x2 = node.x, y2 = node.y + node.h / 2;
        const backwards = x2 <= x1;
        const path = backwards ? `M ${from.x + W / 2} ${from.y + from.h} C ${from.x + W / 2} ${node.y - 30}, ${node.x + W / 2} ${node.y - 30}, ${node.x + W / 2} ${node.y}`
          : `M ${x1} ${y1} C ${x1 + GAP / 2} ${y1}, ${x2 - GAP / 2} ${y2}, ${x2} ${y2}`;
        edges.append(el("svg:path", { d: path, class: node.gradient ? "edge gradient" : "edge", "marker-end": "url(#arrow)" },
          el("svg:title", { text: how ? `${name} → ${node.name} (${how})` : `${name} → ${node.name}` })));
      }
    }
    for (const node of nodes) {
      const g = el("svg:g", { class: "node" + (node.gradient ? " gradient" : ""), "data-node": node.id, transform: `translate(${node.x}, ${node.y})` });
      g.append(el("svg:rect", { width: W, height: node.h, rx: 6, class: "box" }));
      g.append(el("svg:text", { x: 8, y: 15, class: "name", text: node.name }));
      if (node.fn) g.append(el("svg:text", { x: W - 8, y: 15, class: "fn", "text-anchor": "end", text: node.fn }));
      g.append(el("svg:text", { x: 8, y: 28, class: "label", text: node.label }));
      const n = node.value.length, scale = node.gradient ? Math.max(...node.value.map(Math.abs), 1e-300) : 1;
      node.value.forEach((v, j) => {
        if (n <= 8) {
          const y = 34 + j * ROW;
          g.append(el("svg:rect", { x: 8, y: y + 1, width: 12, height: ROW - 3, fill: heat(v, scale), class: "cellbox" }));
          g.append(el("svg:text", { x: 26, y: y + 11, class: "v", "data-j": j, text: num(v, p) }));
        } else {
          const w = (W - 16) / perRow;
          g.append(el("svg:rect", { x: 8 + (j % perRow) * w, y: 34 + Math.floor(j / perRow) * ROW, width: w - 2, height: ROW - 3, fill: heat(v, scale), class: "cellbox" },
            el("svg:title", { text: `${node.name}[${j}] = ${num(v, p)}` })));
        }
      });
      if (node.q) {
        g.addEventListener("click", () => {
          const target = $(`#q-${node.q.symbol}`);
          if (!target) return;
          for (const other of $$(".q.highlight")) other.classList.remove("highlight");
          target.classList.add("highlight");
          target.scrollIntoView({ block: "nearest", behavior: "smooth" });
        });
      }
      svg.append(g);
    }
    return svg;
  }

  // =================================================================================== 2. gradients

  const G = { data: null, model: null, timer: null, hover: null };
  const gradForm = $("#grad-form");

  function gradRequest() {
    const f = gradForm;
    return {
      cells: $$("input[name=cells]:checked", f).map((c) => c.value),
      T: parseInt(f.T.value, 10), H: parseInt(f.H.value, 10), forget_bias: parseFloat(f.forget_bias.value),
      weight_scale: parseFloat(f.weight_scale.value), seed: parseInt(f.seed.value, 10) || 0,
    };
  }

  // The loaded language model's own curve joins the initialisation curves (same T, same time axis).
  const languageModel = () => Boolean(M.info && M.info.loaded && M.info.task === "language_model");
  const withModel = () => languageModel() && gradForm.model.checked;

  async function requestGradients() {
    showError("#grad-error", null);
    const request = gradRequest();
    const init = api("/api/gradient-norms", request);
    const trained = withModel() ? api("/api/model-gradient-norms", { T: request.T, text: gradForm.model_text.value })
      : Promise.resolve(null);
    const [a, b] = await Promise.allSettled([init, trained]);
    const errors = [a, b].filter((r) => r.status === "rejected").map((r) => r.reason.message || r.reason);
    if (a.status === "fulfilled") G.data = a.value;
    G.model = b.status === "fulfilled" ? b.value : null;
    showError("#grad-error", errors.length ? errors.join("; ") : null);
    renderGradients();
  }

  gradForm.addEventListener("input", (event) => {
    for (const name of ["T", "H", "forget_bias", "weight_scale"]) gradForm[name + "_out"].value = gradForm[name].value;
    if (event.target.name === "relative") { renderGradients(); return; }
    clearTimeout(G.timer);
    G.timer = setTimeout(requestGradients, 120);
  });
  gradForm.addEventListener("submit", (event) => event.preventDefault());

  const COLOURS = { RNN: "#d0432f", RNN_RELU: "#e39b2d", GRU: "#2f9a52", LSTM: "#2f62d0", trained: "#8e3fb0" };

  function renderGradients() {
    const plot = $("#grad-plot");
    plot.replaceChildren();
    $("#grad-readout").replaceChildren();
    $("#grad-model").hidden = !languageModel();
    const note = $("#grad-model-note");
    if (note) note.remove();
    const d = G.data;
    if (!d) return;
    const relative = gradForm.relative.checked;
    const curves = Object.entries(d.norms);
    const trained = withModel() && G.model && G.model.T === d.T ? G.model : null;
    if (trained) curves.push(["trained", trained.norms]);  // entries t = 0..T-2: one step back and further
    const label = (kind) => kind === "RNN_RELU" ? "RNN (relu)" : kind === "trained" ?
      t("g_trained", { cell: trained.cell.toUpperCase() }) : kind;
    const series = curves.map(([kind, norms]) => {
      const last = norms[norms.length - 1];
      return [kind, norms.map((v) => (v === null ? null : relative ? v / last : v))];
    });
    const values = series.flatMap(([, s]) => s).filter((v) => v !== null && v > 0 && Number.isFinite(v));
    if (!values.length) return;
    let lo = Math.floor(Math.log10(Math.min(...values))), hi = Math.ceil(Math.log10(Math.max(...values)));
    if (hi === lo) hi += 1;
    const Wd = 780, Ht = 410, m = { l: 70, r: 110, t: 34, b: 50 };
    const X = (i) => m.l + (d.T === 1 ? 0 : (i / (d.T - 1)) * (Wd - m.l - m.r));
    const Y = (v) => m.t + ((hi - Math.log10(v)) / (hi - lo)) * (Ht - m.t - m.b);
    const svg = el("svg:svg", { viewBox: `0 0 ${Wd} ${Ht}`, width: Wd, height: Ht, class: "grad-svg", id: "grad-svg" });
    svg.append(el("svg:text", { x: m.l, y: 14, class: "axis-title", text: t("norms_title") }));
    const step = Math.max(1, Math.ceil((hi - lo) / 8));
    for (let e = lo; e <= hi; e += step) {
      svg.append(el("svg:line", { x1: m.l, x2: Wd - m.r, y1: Y(10 ** e), y2: Y(10 ** e), class: "grid" }));
      svg.append(el("svg:text", { x: m.l - 8, y: Y(10 ** e) + 4, "text-anchor": "end", class: "tick", text: `1e${e}` }));
    }
    const xStep = Math.max(1, Math.ceil(d.T / 10));
    for (let i = 0; i < d.T; i += xStep) {
      svg.append(el("svg:text", { x: X(i), y: Ht - m.b + 18, "text-anchor": "middle", class: "tick", text: String(i) }));
    }
    svg.append(el("svg:text", { x: (m.l + Wd - m.r) / 2, y: Ht - 10, "text-anchor": "middle", class: "axis-title", text: t("g_axis_t") }));
    svg.append(el("svg:text", { x: 16, y: (m.t + Ht - m.b) / 2, "text-anchor": "middle", class: "axis-title",
      transform: `rotate(-90 16 ${(m.t + Ht - m.b) / 2})`, text: t(relative ? "g_axis_rel" : "g_axis_norm") }));
    series.forEach(([kind, s], k) => {
      const points = s.map((v, i) => (v !== null && v > 0 ? `${X(i).toFixed(1)},${Y(v).toFixed(1)}` : null)).filter(Boolean);
      svg.append(el("svg:polyline", { points: points.join(" "), class: "series", stroke: COLOURS[kind], "data-kind": kind }));
      svg.append(el("svg:text", { x: Wd - m.r + 10, y: m.t + 16 + 18 * k, fill: COLOURS[kind], class: "legend", text: label(kind) }));
    });
    const cursor = el("svg:line", { y1: m.t, y2: Ht - m.b, class: "cursor", visibility: "hidden" });
    const dots = el("svg:g");
    svg.append(cursor, dots);
    const readout = (i) => {
      cursor.setAttribute("x1", X(i)); cursor.setAttribute("x2", X(i)); cursor.setAttribute("visibility", "visible");
      dots.replaceChildren();
      const box = $("#grad-readout");
      box.replaceChildren(el("b", { text: t("g_readout", { t: i }) + "  " }));
      for (const [kind, s] of series) {
        if (s[i] !== null && s[i] > 0) dots.append(el("svg:circle", { cx: X(i), cy: Y(s[i]), r: 4, fill: COLOURS[kind] }));
        const value = s[i] === undefined ? "—" : s[i] === null ? "∞" : s[i].toExponential(3);
        box.append(el("span", { class: "read", "data-kind": kind, style: { color: COLOURS[kind] }, text: `${label(kind)}: ${value}  ` }));
      }
      G.hover = i;
    };
    svg.addEventListener("mousemove", (event) => {
      const box = svg.getBoundingClientRect();
      const x = ((event.clientX - box.left) / box.width) * Wd;
      const i = Math.round(((x - m.l) / (Wd - m.l - m.r)) * (d.T - 1));
      if (i >= 0 && i < d.T) readout(i);
    });
    plot.append(svg);
    if (trained) {
      plot.after(el("p", { class: "legend-line", id: "grad-model-note", text: t("g_model_note", { cell: trained.cell.toUpperCase(),
        B: trained.starts.length, T: trained.T }) }));
    }
    readout(G.hover !== null && G.hover < d.T ? G.hover : 0);
  }

  // =================================================================================== 3. a trained model

  const M = { info: null, activations: null, generated: null, classified: null };
  const actForm = $("#act-form"), genForm = $("#gen-form"), clfForm = $("#clf-form");
  const classifier = () => Boolean(M.info && M.info.loaded && M.info.task === "classifier");

  async function loadInfo() {
    try {
      M.info = await api("/api/model");
    } catch (e) {
      showError("#model-error", e);
    }
    if (classifier()) {
      clfForm.label.replaceChildren(el("option", { value: "", "data-i18n": "clf_predicted_option", text: t("clf_predicted_option") }),
        ...M.info.classes.map((c) => el("option", { value: c, text: c })));
      if (!clfForm.text.value) clfForm.text.value = "The film was a great story, and the actor was good, but the plot was awful.";
    } else if (M.info && M.info.loaded) {
      actForm.layer.value = M.info.num_layers - 1;
      actForm.layer.max = M.info.num_layers - 1;
      actForm.unit.max = M.info.hidden_size - 1;
      actForm.state.replaceChildren(...M.info.states.map((s) => el("option", { value: s, text: s })));
      if (M.info.poem_chars) genForm.chars.value = String(M.info.poem_chars);
      if (!actForm.text.value) {
        actForm.text.value = M.info.poem ? "^床前明月光，疑是地上霜。举头望明月，低头思故乡。$" :
          'He said "look (here) at [that]" and left.\nThen "no" (she said).\n';
      }
    }
    renderModel();
    if (G.data) requestGradients();  // the trained model's curve comes or goes with the model
  }

  $("#upload").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    showError("#model-error", null);
    try {
      const response = await fetch("/api/model", { method: "POST", body: file,
        headers: { "Content-Type": "application/octet-stream", "X-File-Name": encodeURIComponent(file.name) } });
      const data = await response.json();
      if (!response.ok) throw new Error(data.error);
      M.info = data;
      M.activations = M.generated = M.classified = null;
      actForm.text.value = clfForm.text.value = "";
      await loadInfo();
    } catch (e) {
      showError("#model-error", e);
    }
  });

  actForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("#model-error", null);
    try {
      M.activations = await api("/api/activations", { text: actForm.text.value, layer: parseInt(actForm.layer.value, 10),
        state: actForm.state.value, unit: parseInt(actForm.unit.value, 10) });
    } catch (e) {
      showError("#model-error", e);
    }
    renderModel();
  });

  genForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("#model-error", null);
    const f = genForm, request = { temperature: parseFloat(f.temperature.value), seed: parseInt(f.seed.value, 10) || 0 };
    if (M.info && M.info.poem) {
      request.chars = parseInt(f.chars.value, 10);
      if (f.acrostic.value.trim()) request.acrostic = f.acrostic.value.trim();
    } else {
      request.prompt = f.prompt.value;
      request.max_new_tokens = parseInt(f.max_new_tokens.value, 10);
    }
    try {
      M.generated = await api("/api/generate", request);
    } catch (e) {
      showError("#model-error", e);
    }
    renderModel();
  });

  clfForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("#model-error", null);
    const request = { text: clfForm.text.value };
    if (clfForm.label.value) request.label = clfForm.label.value;
    try {
      M.classified = await api("/api/classify", request);
    } catch (e) {
      showError("#model-error", e);
    }
    renderModel();
  });
  clfForm.label.addEventListener("change", () => { if (M.classified) clfForm.requestSubmit(); });

  function renderModel() {
    const info = M.info, box = $("#model-info");
    box.replaceChildren();
    $("#model-body").hidden = !(info && info.loaded) || classifier();
    $("#clf-body").hidden = !classifier();
    if (!info || !info.loaded) { box.textContent = t("no_model"); return; }
    if (classifier()) {
      box.textContent = t("model_desc_clf", { name: info.name, cell: info.cell.toUpperCase(), layers: info.num_layers,
        H: info.hidden_size, bi: info.bidirectional ? t("bidirectional") : "", pooling: info.pooling, classes: info.classes.join(", ") });
      renderClassified();
      return;
    }
    box.textContent = t("model_desc", { name: info.name, cell: info.cell.toUpperCase(), layers: info.num_layers,
      H: info.hidden_size, V: info.vocab_size, level: t("level_" + info.level), poem: info.poem ? t("poem_model") : "" });
    for (const e of $$(".poem-only")) e.hidden = !info.poem;
    for (const e of $$(".plain-only")) e.hidden = info.poem;

    const coloured = $("#coloured"), features = $("#features"), generated = $("#generated");
    coloured.replaceChildren();
    features.replaceChildren();
    generated.replaceChildren();
    const a = M.activations;
    if (a) {
      coloured.append(el("div", { class: "legend-line", text: t("unit_shown", { layer: a.layer, state: a.state, unit: a.unit, range: num(a.range, 3) }) }));
      const text = el("div", { class: "text", id: "coloured-text" });
      a.pieces.forEach((piece, k) => {
        text.append(el("span", { style: { background: heat(a.values[k], a.range) }, title: `${JSON.stringify(piece)}: ${num(a.values[k], 4)}`, "data-v": a.values[k] }, piece));
      });
      coloured.append(text);
      features.append(el("h3", { text: t("features_title") }));
      for (const [name, f] of Object.entries(a.features)) {
        const row = el("div", { class: "feature", "data-feature": name }, el("span", { class: "fname", text: t("feature_" + name) }));
        if (f.constant) row.append(el("span", { class: "muted", text: t("constant") }));
        for (const u of f.top) {
          row.append(el("button", { type: "button", class: "unit-button", text: `L${u.layer} ${u.state}[${u.unit}] r = ${u.r >= 0 ? "+" : ""}${u.r.toFixed(2)}`,
            onclick: () => {
              actForm.layer.value = u.layer; actForm.state.value = u.state; actForm.unit.value = u.unit;
              actForm.requestSubmit();
            } }));
        }
        features.append(row);
      }
    }
    const g = M.generated;
    if (g) {
      generated.append(el("div", { class: "legend-line", text: t("generated_note") }));
      const text = el("div", { class: "text", id: "generated-text" });
      for (const token of g.tokens) {
        text.append(el("span", { class: token.forced ? "forced" : "", title: `p = ${num(token.p, 4)}`, "data-p": token.p,
          style: { background: `rgba(40, 160, 90, ${Math.min(1, token.p).toFixed(3)})` } }, token.piece));
        if (g.poem && /[，。]/.test(token.piece)) text.append(el("br"));
      }
      generated.append(text);
    }
  }

  // A classifier's running opinion: the words coloured by their effect on the chosen class, the running
  // probability of every class as a plot (hover for the values), the attention weights underlined.
  function renderClassified() {
    const out = $("#classified"), c = M.classified;
    out.replaceChildren();
    if (!c) return;
    const T = c.tokens.length, k = c.classes.indexOf(c.label), last = c.probabilities[T - 1];
    out.append(el("div", { class: "model-info", id: "clf-predicted", "data-label": c.predicted,
      text: t("clf_predicted", { label: c.predicted, p: num(Math.max(...last), 3) }) }));
    out.append(el("div", { class: "legend-line", text: t("clf_legend", { label: c.label }) +
      (c.attention ? "; " + t("clf_attention_legend") : "") }));
    const scale = Math.max(...c.effects.map(Math.abs), 1e-6), top = c.attention ? Math.max(...c.attention) : 1;
    const text = el("div", { class: "text clf-text", id: "clf-text" });
    c.tokens.forEach((token, i) => {
      const e = c.effects[i] / scale, style = {
        background: e >= 0 ? `rgba(40, 160, 70, ${e.toFixed(3)})` : `rgba(215, 50, 40, ${(-e).toFixed(3)})` };
      let title = `p(${c.label}) = ${num(c.probabilities[i][k], 4)} (${c.effects[i] >= 0 ? "+" : ""}${num(c.effects[i], 4)})`;
      if (c.attention) {
        style.boxShadow = `inset 0 -3px 0 rgba(40, 80, 220, ${(c.attention[i] / top).toFixed(3)})`;
        title += `, ${t("clf_attention")} ${num(c.attention[i], 4)}`;
      }
      text.append(el("span", { style, title, "data-effect": c.effects[i], "data-p": c.probabilities[i][k],
        "data-attention": c.attention ? c.attention[i] : "" }, token), " ");
    });
    out.append(text);

    // the running probabilities, p(class) after token t, on a linear axis from 0 to 1
    const Wd = 780, Ht = 260, m = { l: 60, r: 120, t: 30, b: 46 };
    const X = (i) => m.l + (T === 1 ? 0 : (i / (T - 1)) * (Wd - m.l - m.r));
    const Y = (v) => m.t + (1 - v) * (Ht - m.t - m.b);
    const colour = (j) => ["#2f62d0", "#e39b2d", "#8e3fb0", "#1f9aa8", "#666", "#a0522d"][j % 6];  // not the words' green / red
    const svg = el("svg:svg", { viewBox: `0 0 ${Wd} ${Ht}`, width: Wd, height: Ht, class: "grad-svg", id: "clf-svg" });
    svg.append(el("svg:text", { x: m.l, y: 14, class: "axis-title", text: t("clf_running") }));
    for (const v of [0, 0.25, 0.5, 0.75, 1]) {
      svg.append(el("svg:line", { x1: m.l, x2: Wd - m.r, y1: Y(v), y2: Y(v), class: "grid" }));
      svg.append(el("svg:text", { x: m.l - 8, y: Y(v) + 4, "text-anchor": "end", class: "tick", text: String(v) }));
    }
    const xStep = Math.max(1, Math.ceil(T / 12));
    for (let i = 0; i < T; i += xStep) {
      svg.append(el("svg:text", { x: X(i), y: Ht - m.b + 18, "text-anchor": "middle", class: "tick", text: String(i + 1) }));
    }
    svg.append(el("svg:text", { x: (m.l + Wd - m.r) / 2, y: Ht - 8, "text-anchor": "middle", class: "axis-title", text: t("clf_axis_t") }));
    svg.append(el("svg:text", { x: 16, y: (m.t + Ht - m.b) / 2, "text-anchor": "middle", class: "axis-title",
      transform: `rotate(-90 16 ${(m.t + Ht - m.b) / 2})`, text: t("clf_axis_p") }));
    c.classes.forEach((name, j) => {
      const points = c.probabilities.map((p, i) => `${X(i).toFixed(1)},${Y(p[j]).toFixed(1)}`).join(" ");
      svg.append(el("svg:polyline", { points, class: "series", stroke: colour(j), "data-class": name,
        "stroke-width": j === k ? 3 : 1.5 }));
      svg.append(el("svg:text", { x: Wd - m.r + 10, y: m.t + 16 + 18 * j, fill: colour(j), class: "legend", text: name }));
    });
    const cursor = el("svg:line", { y1: m.t, y2: Ht - m.b, class: "cursor", visibility: "hidden" }), dots = el("svg:g");
    svg.append(cursor, dots);
    const readout = el("div", { class: "readout", id: "clf-readout" });
    const show = (i) => {
      cursor.setAttribute("x1", X(i)); cursor.setAttribute("x2", X(i)); cursor.setAttribute("visibility", "visible");
      dots.replaceChildren(...c.classes.map((_, j) => el("svg:circle", { cx: X(i), cy: Y(c.probabilities[i][j]), r: 4, fill: colour(j) })));
      readout.replaceChildren(el("b", { text: t("clf_readout", { t: i + 1, token: c.tokens[i] }) + "  " }),
        ...c.classes.map((name, j) => el("span", { class: "read", "data-class": name, style: { color: colour(j) },
          text: `p(${name}) = ${num(c.probabilities[i][j], 4)}  ` })));
    };
    svg.addEventListener("mousemove", (event) => {
      const box = svg.getBoundingClientRect();
      const i = Math.round(((((event.clientX - box.left) / box.width) * Wd - m.l) / (Wd - m.l - m.r)) * (T - 1));
      if (i >= 0 && i < T) show(i);
    });
    out.append(el("div", { class: "plot" }, svg), readout);
    show(T - 1);
  }

  // ------------------------------------------------------------------------------------- start

  applyLanguage();
  loadInfo();
  stepForm.requestSubmit();
})();
