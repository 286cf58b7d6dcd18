package dev.pocketbert.embedding;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Iterator;
import java.util.List;

/**
 * Checks {@link Embeddings} against vectors pocketbert's Python wrote (no JUnit needed):
 * {@code java EmbeddingCheck vectors.txt}. The file holds, one item a line:
 * "sentences N hidden H", then per sentence "mask m1 m2 ...", one "tokens" line of S x H
 * values and "pooled" with the normalised mean Python pooled; then N "similarity" rows
 * and N "nearest" rows (the top 3 others). Prints "checked N sentences, M mismatches".
 */
public final class EmbeddingCheck {
    private static final double TOLERANCE = 1e-5;

    public static void main(String[] args) throws IOException {
        List<String> lines = Files.readAllLines(Paths.get(args[0]), StandardCharsets.UTF_8);
        Iterator<String> it = lines.iterator();
        String[] head = it.next().split(" ");
        int count = Integer.parseInt(head[1]);
        int hidden = Integer.parseInt(head[3]);
        float[][] pooled = new float[count][];
        int mismatches = 0;
        for (int n = 0; n < count; n++) {
            int[] mask = ints(it.next(), "mask");
            float[] tokens = floats(it.next(), "tokens");
            float[] expected = floats(it.next(), "pooled");
            pooled[n] = Embeddings.normalize(Embeddings.meanPool(tokens, mask, hidden));
            for (int i = 0; i < hidden; i++) {
                if (Math.abs(pooled[n][i] - expected[i]) > TOLERANCE) {
                    System.out.println("sentence " + n + " dim " + i + ": " + pooled[n][i] + " != " + expected[i]);
                    mismatches++;
                    break;
                }
            }
        }
        for (int n = 0; n < count; n++) {
            float[] row = floats(it.next(), "similarity");
            for (int m = 0; m < count; m++) {
                if (Math.abs(Embeddings.cosine(pooled[n], pooled[m]) - row[m]) > TOLERANCE) {
                    System.out.println("similarity " + n + "," + m + " differs");
                    mismatches++;
                }
            }
        }
        for (int n = 0; n < count; n++) {
            int[] expected = ints(it.next(), "nearest");
            int[] got = Embeddings.nearest(pooled[n], pooled, expected.length, n);
            if (!java.util.Arrays.equals(got, expected)) {
                System.out.println("nearest of " + n + ": " + java.util.Arrays.toString(got) + " != "
                        + java.util.Arrays.toString(expected));
                mismatches++;
            }
        }
        System.out.println("checked " + count + " sentences, " + mismatches + " mismatches");
        System.exit(mismatches == 0 ? 0 : 1);
    }

    private static String[] fields(String line, String tag) {
        String[] f = line.trim().split(" ");
        if (!f[0].equals(tag)) {
            throw new IllegalStateException("expected a '" + tag + "' line, got: " + line.substring(0, Math.min(40, line.length())));
        }
        return f;
    }

    private static float[] floats(String line, String tag) {
        String[] f = fields(line, tag);
        float[] out = new float[f.length - 1];
        for (int i = 1; i < f.length; i++) {
            out[i - 1] = Float.parseFloat(f[i]);
        }
        return out;
    }

    private static int[] ints(String line, String tag) {
        String[] f = fields(line, tag);
        int[] out = new int[f.length - 1];
        for (int i = 1; i < f.length; i++) {
            out[i - 1] = Integer.parseInt(f[i]);
        }
        return out;
    }
}
