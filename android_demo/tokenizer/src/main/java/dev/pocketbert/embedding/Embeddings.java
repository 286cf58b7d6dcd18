package dev.pocketbert.embedding;

import java.util.Arrays;
import java.util.Comparator;

/**
 * The app side of on-device semantic search: pooling for graphs that give token states
 * (feature-extraction exports), normalisation, cosine similarity and ranking. A
 * sentence-embedding export pools inside the graph; this class then only ranks. Pure Java,
 * checked on the JVM against pocketbert's Python on shared vectors.
 */
public final class Embeddings {
    private Embeddings() {}

    /**
     * Mean of the token states of real tokens, as sentence-transformers pools.
     *
     * @param tokens [sequence * hidden] row-major, as the interpreter's output buffer holds them
     * @param mask   [sequence], 1 for a real token, 0 for padding
     */
    public static float[] meanPool(float[] tokens, int[] mask, int hidden) {
        if (tokens.length != mask.length * hidden) {
            throw new IllegalArgumentException("token states hold " + tokens.length + " values, not "
                    + mask.length + " x " + hidden);
        }
        double[] sum = new double[hidden];
        int count = 0;
        for (int position = 0; position < mask.length; position++) {
            if (mask[position] == 0) {
                continue;
            }
            count++;
            for (int i = 0; i < hidden; i++) {
                sum[i] += tokens[position * hidden + i];
            }
        }
        float[] mean = new float[hidden];
        double denominator = Math.max(count, 1e-9);
        for (int i = 0; i < hidden; i++) {
            mean[i] = (float) (sum[i] / denominator);
        }
        return mean;
    }

    /** The vector scaled to unit length (a zero vector stays zero). */
    public static float[] normalize(float[] vector) {
        double norm = Math.sqrt(dot(vector, vector));
        double scale = 1.0 / Math.max(norm, 1e-12);
        float[] unit = new float[vector.length];
        for (int i = 0; i < vector.length; i++) {
            unit[i] = (float) (vector[i] * scale);
        }
        return unit;
    }

    public static double cosine(float[] a, float[] b) {
        if (a.length != b.length) {
            throw new IllegalArgumentException("vectors of " + a.length + " and " + b.length + " dimensions");
        }
        double norms = Math.sqrt(dot(a, a)) * Math.sqrt(dot(b, b));
        return dot(a, b) / Math.max(norms, 1e-12);
    }

    /** Indices of the {@code k} entries of {@code corpus} most similar to {@code query}, best first (ties: lower index). */
    public static int[] nearest(float[] query, float[][] corpus, int k, int skip) {
        Integer[] order = new Integer[corpus.length];
        double[] scores = new double[corpus.length];
        for (int i = 0; i < corpus.length; i++) {
            order[i] = i;
            scores[i] = cosine(query, corpus[i]);
        }
        Arrays.sort(order, Comparator.comparingDouble((Integer i) -> -scores[i]).thenComparingInt(i -> i));
        return Arrays.stream(order).mapToInt(Integer::intValue).filter(i -> i != skip).limit(k).toArray();
    }

    private static double dot(float[] a, float[] b) {
        double sum = 0;
        for (int i = 0; i < a.length; i++) {
            sum += (double) a[i] * b[i];
        }
        return sum;
    }
}
