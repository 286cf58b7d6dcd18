package dev.pocketbert.demo

import android.os.Build
import android.util.Log
import org.json.JSONArray
import org.json.JSONObject

/**
 * The mobilebert-pixel4 protocol of the MobileBERT paper (TFLite, 4 threads, seq 128,
 * batch 1): warm-up runs, then timed runs (at least [numRuns] and at least [minSeconds]),
 * median and p90, on whichever LiteRT backend the model opened (its `backend` field). The
 * result is logged as one JSON line under [TAG], which
 * `adb logcat -s PocketBertBench` (and `pocketbert bench --device adb`) collects.
 * `seq_len` is the length that ran: the file's static length (as the paper's seq 128 when
 * exported so), or for a bucketed file the bucket the sentence picked, named in `bucket`
 * ("seq_16") beside its real `tokens` and the file's `buckets`.
 */
object Benchmark {
    const val TAG = "PocketBertBench"
    const val PROTOCOL = "mobilebert-pixel4"
    const val THREADS = 4

    fun run(model: BertModel, warmupRuns: Int = 10, numRuns: Int = 50, minSeconds: Double = 1.0): JSONObject {
        val encoding = model.encode("The capital of France is [MASK].")
        val firstRun = model.run(encoding)
        val first = firstRun.millis
        repeat(warmupRuns) { model.run(encoding) }
        val times = mutableListOf<Double>()
        val start = System.nanoTime()
        while (times.size < numRuns || (System.nanoTime() - start) / 1e9 < minSeconds) {
            times += model.run(encoding).millis
        }
        val sorted = times.sorted()
        fun percentile(p: Double) = sorted[((sorted.size - 1) * p).toInt()]
        val line = JSONObject()
            .put("protocol", PROTOCOL)
            .put("task", model.task)
            .put("backend", model.backendName)
            .put("threads", model.threads)
            .put("seq_len", firstRun.sequenceLength)
        if (firstRun.signature != null) {  // absent for a single-length file: its line reads as before
            line.put("bucket", firstRun.signature).put("tokens", firstRun.tokens).put("buckets", JSONArray(model.buckets.toList()))
        }
        line.put("batch", 1)
            .put("warmup_runs", warmupRuns)
            .put("num_runs", times.size)
            .put("init_ms", model.initMillis)
            .put("first_inference_ms", first)
            .put("median_ms", percentile(0.5))
            .put("p90_ms", percentile(0.9))
            .put("mean_ms", times.average())
            .put("min_ms", sorted.first())
            .put("max_ms", sorted.last())
            .put("device", "${Build.MANUFACTURER} ${Build.MODEL}")
            .put("android_sdk", Build.VERSION.SDK_INT)
        Log.i(TAG, line.toString())
        return line
    }
}
