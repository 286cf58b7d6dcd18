package dev.pocketbert.demo

import android.os.Bundle
import android.text.InputType
import android.view.View
import android.widget.Button
import android.widget.EditText
import android.widget.LinearLayout
import android.widget.RadioButton
import android.widget.RadioGroup
import android.widget.ScrollView
import android.widget.TextView
import androidx.appcompat.app.AppCompatActivity
import java.util.concurrent.Executors

/** Fill-mask, text classification, semantic search and the benchmark, on the model in assets/. */
class MainActivity : AppCompatActivity() {
    private val worker = Executors.newSingleThreadExecutor()
    private lateinit var input: EditText
    private lateinit var threads: EditText
    private lateinit var gpu: RadioButton
    private lateinit var output: TextView

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val column = LinearLayout(this).apply { orientation = LinearLayout.VERTICAL; setPadding(32, 32, 32, 32) }
        input = EditText(this).apply {
            setText("The capital of France is [MASK].")
            inputType = InputType.TYPE_CLASS_TEXT or InputType.TYPE_TEXT_FLAG_MULTI_LINE
            hint = "Search: the query on the first line, one document per line after it"
        }
        threads = EditText(this).apply { setText("4"); hint = "threads" }
        // accelerator for LiteRT's CompiledModel; GPU falls back to CPU, then to the Interpreter
        val cpu = RadioButton(this).apply { id = View.generateViewId(); text = "CPU"; isChecked = true }
        gpu = RadioButton(this).apply { id = View.generateViewId(); text = "GPU" }
        val accelerator = RadioGroup(this).apply {
            orientation = LinearLayout.HORIZONTAL
            addView(cpu)
            addView(gpu)
        }
        output = TextView(this).apply { setTextIsSelectable(true) }
        column.addView(input)
        column.addView(threads)
        column.addView(accelerator)
        column.addView(button("Fill mask") { model, text -> fillMask(model, text) })
        column.addView(button("Classify") { model, text -> classify(model, text) })
        column.addView(button("Search (query, then documents)") { model, text -> search(model, text) })
        column.addView(button("Benchmark (mobilebert-pixel4)") { model, _ -> Benchmark.run(model).toString(2) })
        column.addView(output)
        setContentView(ScrollView(this).apply { addView(column) })
    }

    private fun button(label: String, action: (BertModel, String) -> String) = Button(this).apply {
        text = label
        setOnClickListener {
            val text = input.text.toString()
            val count = threads.text.toString().toIntOrNull() ?: Benchmark.THREADS
            val choice = if (gpu.isChecked) AcceleratorChoice.GPU else AcceleratorChoice.CPU
            output.text = "running..."
            worker.execute {
                val shown = runCatching {
                    BertModel(this@MainActivity, count, accelerator = choice).use { "${action(it, text)}\n\n${it.backendName}" }
                }.getOrElse { "error: ${it.message}" }
                runOnUiThread { output.text = shown }
            }
        }
    }

    private fun fillMask(model: BertModel, text: String): String {
        val (answers, result) = model.fillMask(text)
        if (answers.isEmpty()) return "no [MASK] in the text"
        return answers.joinToString("\n\n") { mask ->
            mask.joinToString("\n") { (token, p) -> "%.4f  %s".format(p, token) }
        } + "\n\n%.1f ms".format(result.millis) + result.bucketNote
    }

    private fun classify(model: BertModel, text: String): String {
        val (ranked, result) = model.classify(text)
        return ranked.joinToString("\n") { (label, p) -> "%.4f  %s".format(p, label) } + "\n\n%.1f ms".format(result.millis) +
            result.bucketNote
    }

    private fun search(model: BertModel, text: String): String {
        val lines = text.lines().map { it.trim() }.filter { it.isNotEmpty() }
        if (lines.size < 2) return "write the query on the first line and at least one document below it"
        val (ranked, runs) = model.search(lines.first(), lines.drop(1))
        return ranked.joinToString("\n") { (document, cosine) -> "%.4f  %s".format(cosine, document) } +
            "\n\n%d texts embedded in %.1f ms".format(lines.size, runs.sumOf { it.millis }) + Result.bucketsNote(runs)
    }

    override fun onDestroy() {
        worker.shutdown()
        super.onDestroy()
    }
}
