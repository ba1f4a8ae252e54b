"""tfdphpe.evaluation"""
