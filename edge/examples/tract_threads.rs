//! A minimal reproducer for tract's int8 convolution not using a second thread (issue 13,
//! BENCHMARKS.md "tract's int8 path on one convolution"): runs one ONNX model in plain tract
//! (tract's own defaults: none of this product's knobs or code) on `THREADS` threads and prints
//! the median latency of `RUNS` runs on a constant input.
//!
//! usage: cargo run --release -p flowercam-edge --example tract_threads -- MODEL.onnx THREADS RUNS
//! (bench/tract_int8/run.sh writes the models and runs it beside onnxruntime).

use std::time::Instant;

use tract_onnx::prelude::*;

fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, threads, runs] = args.as_slice() else {
        eprintln!("usage: tract_threads MODEL.onnx THREADS RUNS");
        std::process::exit(2);
    };
    let (threads, runs): (usize, usize) = (threads.parse()?, runs.parse()?);
    if threads == 0 || runs == 0 {
        eprintln!("THREADS and RUNS must be at least 1");
        std::process::exit(2);
    }
    if threads > 1 {
        tract_linalg::multithread::set_default_executor(tract_linalg::multithread::Executor::multithread(threads));
    }
    let plan = tract_onnx::onnx().model_for_path(model)?.into_optimized()?.into_runnable()?;
    let fact = plan.model().input_fact(0)?.clone();
    let shape: Vec<usize> = fact.shape.as_concrete().expect("a model with a fixed input shape").to_vec();
    let input: Tensor = tract_ndarray::ArrayD::<f32>::from_elem(shape, 0.5).into();
    plan.run(tvec!(input.clone().into()))?; // warm-up
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            plan.run(tvec!(input.clone().into())).expect("the model runs");
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!("{model} threads {threads}: median {:.2} ms over {runs} runs", times[runs / 2]);
    Ok(())
}
